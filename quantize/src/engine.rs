//! Running an int8 model on one image: the [`Engine`] boundary the report and `eval` use.
//!
//! [`Firmware`] is the firmware crate's engine on the file bytes (what a device runs);
//! [`Reference`] is this crate's plain interpreter of the in-memory model (`reference.rs`).
use crate::quant::QModel;

/// One image through an int8 engine: `hook(op_index, output)` after each op; returns the int8
/// logits.
pub trait Engine: Sync {
    fn run(&self, input: &[u8], hook: &mut dyn FnMut(usize, &[i8])) -> Result<Vec<i8>, String>;
    /// Number of classes (length of the logits).
    fn classes(&self) -> usize;
}

pub struct Reference<'a>(pub &'a QModel);

impl Engine for Reference<'_> {
    fn run(&self, input: &[u8], hook: &mut dyn FnMut(usize, &[i8])) -> Result<Vec<i8>, String> {
        let t = self.0.tensors[self.0.header.input as usize];
        if input.len() != t.bytes() {
            return Err(format!(
                "input has {} bytes, the model takes {}",
                input.len(),
                t.bytes()
            ));
        }
        Ok(crate::reference::run(self.0, input, hook))
    }
    fn classes(&self) -> usize {
        self.0.header.classes as usize
    }
}

/// A model file run by the firmware engine (`firmware::run`), each image in a fresh arena.
pub struct Firmware<'a> {
    model: firmware::Model<'a>,
}

impl<'a> Firmware<'a> {
    /// Validates the file (`Model::from_bytes`).
    pub fn new(bytes: &'a [u8]) -> Result<Firmware<'a>, firmware::ModelError> {
        Ok(Firmware {
            model: firmware::Model::from_bytes(bytes)?,
        })
    }
    pub fn model(&self) -> &firmware::Model<'a> {
        &self.model
    }
}

/// The engine's `Profiler` `end` hook, forwarded to a closure.
struct Hook<'h>(&'h mut dyn FnMut(usize, &[i8]));

impl firmware::Profiler for Hook<'_> {
    fn end(&mut self, op_index: usize, output: &[i8]) {
        (self.0)(op_index, output)
    }
}

impl Engine for Firmware<'_> {
    fn run(&self, input: &[u8], hook: &mut dyn FnMut(usize, &[i8])) -> Result<Vec<i8>, String> {
        let mut arena = vec![0i8; self.model.arena_bytes()];
        firmware::run(&self.model, input, &mut arena, &mut Hook(hook))
            .map(|logits| logits.to_vec())
            .map_err(|e| e.to_string())
    }
    fn classes(&self) -> usize {
        self.model.classes()
    }
}
