//! Hostile fixture: a component built for some other host's world.
//!
//! It exports `evil:plugin/greeter` instead of `weft:step/compute`, and it
//! imports `evil:plugin/secrets`, which no Weft host provides.

#![allow(missing_docs, unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package evil:plugin@1.0.0;
        interface secrets { get: func(name: string) -> string; }
        interface greeter { greet: func(name: string) -> string; }
        world not-a-step {
            import secrets;
            export greeter;
        }
    ",
});

struct Greeter;

impl exports::evil::plugin::greeter::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name}, the key is {}", evil::plugin::secrets::get("api-key"))
    }
}

export!(Greeter);
