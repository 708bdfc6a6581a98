//! Hostile fixture: allocates and touches memory, 1 MiB at a time, forever.

use weft_plugin::{Context, StepError, Value};

fn bomb(_ctx: &mut Context, _input: Value) -> Result<Value, StepError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for b in chunk.iter_mut().step_by(4096) {
            *b = 1;
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

weft_plugin::compute_step!(bomb);
