//! The model and test digits embedded (see `boards/embed`); budget.x is for the budget check
//! only, since esp-hal's linker scripts bring the chip's memory map.
fn main() {
    embed::build_script();
}
