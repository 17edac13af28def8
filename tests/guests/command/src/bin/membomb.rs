//! Hostile: allocates memory until something gives.
fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 8 << 20];
        chunk[0] = 1;
        hoard.push(std::hint::black_box(chunk));
    }
}
