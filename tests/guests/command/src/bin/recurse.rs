//! Hostile: recurses without end.
#[allow(unconditional_recursion, reason = "the point of this guest")]
fn deeper(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 16]);
    deeper(pad[3] + 1) + pad[7]
}

fn main() {
    println!("{}", deeper(0));
}
