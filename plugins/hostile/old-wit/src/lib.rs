//! Hostile fixture: a step built against a WIT that is not Weft's, though
//! its names are: `weft:step/compute@0.1.0` whose `run` takes and returns a
//! bare string, and a `log` that takes only a message. The host must say
//! which interface and function differ and which world it expected.

#![allow(missing_docs, unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package weft:step@0.1.0;
        interface log { log: func(message: string); }
        interface compute { run: func(input: string) -> string; }
        world compute-step {
            import log;
            export compute;
        }
    ",
});

struct Step;

impl exports::weft::step::compute::Guest for Step {
    fn run(input: String) -> String {
        weft::step::log::log("running");
        input
    }
}

export!(Step);
