//! memory.x on the link path; the model and test digits embedded (see `boards/embed`).
fn main() {
    embed::build_script();
}
