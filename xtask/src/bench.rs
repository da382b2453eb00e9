pub fn main(_a: Vec<String>) -> Result<(), String> {
    Err("todo".into())
}
