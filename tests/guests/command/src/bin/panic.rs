//! Hostile: panics.
fn main() {
    let v: Vec<u32> = Vec::new();
    let i = std::hint::black_box(7);
    println!("{}", v[i]);
}
