//! Gives the preview-1 adapter memory of its own inside a Go module.
//!
//! The adapter has no memory of its own: it allocates its state and its
//! 64 KiB stack in the main module's memory, the first time the module calls
//! WASI, through the module's `cabi_realloc_adapter` (else `cabi_realloc`,
//! else `memory.grow`). Go's runtime makes WASI calls while it starts, when
//! none of its exported functions may run yet, so `cabi_realloc` cannot
//! serve. And `memory.grow` pages are not safe either: Go's heap assumes it
//! owns every address above its static data, and grows into them, so under
//! load (a few MiB of heap) Go overwrites the adapter's state or aborts with
//! "grew heap, but no adequate free space found".
//!
//! So the Go glue (`plugins/templates/go/weft/abi.go`) reserves an arena in
//! its static data, below the heap, starting with [`ARENA_MARKER`]; this
//! module finds the marker in the module's data segments and adds a
//! `cabi_realloc_adapter` export: a bump allocator over that arena, written
//! in wasm, which needs no Go runtime.

use anyhow::{Context as _, bail};
use wasm_encoder::reencode::{Reencode, utils};
use wasm_encoder::{ConstExpr, Function, GlobalType, Instruction, ValType};
// The wasmparser that wasm-encoder's re-encoder speaks (the host's own checks
// use wasmtime's version, `wasmparser`).
use wasmparser::{DataKind, Operator, Parser, Payload, TypeRef};
use wasmparser_authoring as wasmparser;

/// The 16 bytes that start the Go glue's adapter arena.
pub const ARENA_MARKER: &[u8; 16] = b"weft:adapter-mem";
/// The arena's size, as the Go glue declares it.
pub const ARENA_BYTES: u32 = 256 * 1024;

/// What the module must be told to hold the allocator.
struct Layout {
    arena: u32,
    realloc_type: Option<u32>,
    types: u32,
    functions: u32,
    globals: u32,
}

fn layout(module: &[u8]) -> anyhow::Result<Option<Layout>> {
    let mut found = Vec::new();
    let (mut types, mut functions, mut globals, mut realloc_type) = (0u32, 0u32, 0u32, None);
    for payload in Parser::new(0).parse_all(module) {
        match payload.context("the Go module does not parse")? {
            Payload::TypeSection(s) => {
                for (i, group) in s.into_iter().enumerate() {
                    for sub in group?.into_types() {
                        if let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner
                            && f.params() == [wasmparser::ValType::I32; 4]
                            && f.results() == [wasmparser::ValType::I32]
                        {
                            realloc_type.get_or_insert(i as u32);
                        }
                    }
                    types += 1;
                }
            }
            Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    match import?.ty {
                        TypeRef::Func(_) => functions += 1,
                        TypeRef::Global(_) => globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(s) => functions += s.count(),
            Payload::GlobalSection(s) => globals += s.count(),
            Payload::DataSection(s) => {
                for data in s {
                    let data = data?;
                    let DataKind::Active { memory_index: 0, offset_expr } = data.kind else { continue };
                    let Some(Ok(Operator::I32Const { value })) = offset_expr.get_operators_reader().into_iter().next()
                    else {
                        continue;
                    };
                    let mut at = 0;
                    while let Some(pos) = data.data[at..].windows(ARENA_MARKER.len()).position(|w| w == ARENA_MARKER) {
                        found.push((value as u32).wrapping_add((at + pos) as u32));
                        at += pos + 1;
                    }
                }
            }
            _ => {}
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [arena] => Ok(Some(Layout { arena: *arena, realloc_type, types, functions, globals })),
        _ => bail!("the Go module holds the adapter arena's marker {} times; it must hold it once", found.len()),
    }
}

/// The module with a `cabi_realloc_adapter` over the Go glue's arena, or
/// `None` when the module has no arena (it was not built with Weft's glue).
pub fn add_adapter_allocator(module: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(layout) = layout(module)? else { return Ok(None) };
    let mut adder = Adder { layout, added: [false; 4] };
    let mut out = wasm_encoder::Module::new();
    adder
        .parse_core_module(&mut out, Parser::new(0), module)
        .map_err(|e| anyhow::anyhow!("cannot add the adapter's allocator to the Go module: {e:?}"))?;
    if adder.added != [true; 4] {
        bail!("the Go module lacks a section the adapter's allocator needs (type, function, global, export and code)");
    }
    Ok(Some(out.finish()))
}

struct Adder {
    layout: Layout,
    /// Whether the type, function, global and export were added.
    added: [bool; 4],
}

impl Adder {
    fn realloc_type_index(&self) -> u32 {
        self.layout.realloc_type.unwrap_or(self.layout.types)
    }

    /// cabi_realloc_adapter(old_ptr, old_size, align, new_size) -> ptr: bumps
    /// a pointer through the arena, traps when it is used up, and copies
    /// what a reallocation keeps.
    fn body(&self) -> Function {
        let bump = self.layout.globals;
        let end = (self.layout.arena + ARENA_BYTES) as i32;
        let mut f = Function::new([(1, ValType::I32)]);
        let ptr = 4;
        for i in [
            // ptr = (bump + align - 1) & -align
            Instruction::GlobalGet(bump),
            Instruction::LocalGet(2),
            Instruction::I32Add,
            Instruction::I32Const(1),
            Instruction::I32Sub,
            Instruction::I32Const(0),
            Instruction::LocalGet(2),
            Instruction::I32Sub,
            Instruction::I32And,
            Instruction::LocalTee(ptr),
            // if ptr > end || new_size > end - ptr: trap
            Instruction::I32Const(end),
            Instruction::I32GtU,
            Instruction::LocalGet(3),
            Instruction::I32Const(end),
            Instruction::LocalGet(ptr),
            Instruction::I32Sub,
            Instruction::I32GtU,
            Instruction::I32Or,
            Instruction::If(wasm_encoder::BlockType::Empty),
            Instruction::Unreachable,
            Instruction::End,
            // bump = ptr + new_size
            Instruction::LocalGet(ptr),
            Instruction::LocalGet(3),
            Instruction::I32Add,
            Instruction::GlobalSet(bump),
            // if old_ptr: copy min(old_size, new_size) bytes
            Instruction::LocalGet(0),
            Instruction::If(wasm_encoder::BlockType::Empty),
            Instruction::LocalGet(ptr),
            Instruction::LocalGet(0),
            Instruction::LocalGet(1),
            Instruction::LocalGet(3),
            Instruction::LocalGet(1),
            Instruction::LocalGet(3),
            Instruction::I32LtU,
            Instruction::Select,
            Instruction::MemoryCopy { src_mem: 0, dst_mem: 0 },
            Instruction::End,
            Instruction::LocalGet(ptr),
            Instruction::End,
        ] {
            f.instruction(&i);
        }
        f
    }
}

impl Reencode for Adder {
    type Error = std::convert::Infallible;

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        utils::parse_type_section(self, types, section)?;
        if self.layout.realloc_type.is_none() {
            types.ty().function([ValType::I32; 4], [ValType::I32]);
        }
        self.added[0] = true;
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        utils::parse_function_section(self, functions, section)?;
        functions.function(self.realloc_type_index());
        self.added[1] = true;
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        utils::parse_global_section(self, globals, section)?;
        // The bump pointer starts past the marker.
        let start = (self.layout.arena + ARENA_MARKER.len() as u32) as i32;
        globals
            .global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(start));
        self.added[2] = true;
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        utils::parse_export_section(self, exports, section)?;
        exports.export("cabi_realloc_adapter", wasm_encoder::ExportKind::Func, self.layout.functions);
        self.added[3] = true;
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        utils::parse_code_section(self, code, section)?;
        code.function(&self.body());
        Ok(())
    }
}
