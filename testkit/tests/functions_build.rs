//! The functions workspace builds, and every guest is a WASI preview-1 command module that
//! imports nothing but `wasi_snapshot_preview1` (what the runtime's linker provides).

use std::panic::AssertUnwindSafe;

use wasmparser::{Encoding, ExternalKind, Parser, Payload, TypeRef};

/// What a module imports and exports, as far as the action ABI cares.
struct Shape {
    import_modules: Vec<String>,
    imports_memory: bool,
    func_exports: Vec<String>,
    memory_exports: Vec<String>,
}

fn shape(name: &str, bytes: &[u8]) -> Shape {
    let mut shape = Shape {
        import_modules: Vec::new(),
        imports_memory: false,
        func_exports: Vec::new(),
        memory_exports: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap_or_else(|e| panic!("{name}.wasm does not parse: {e}")) {
            Payload::Version { encoding, .. } => {
                assert_eq!(
                    encoding,
                    Encoding::Module,
                    "{name}.wasm must be a core module"
                );
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    shape.import_modules.push(import.module.to_owned());
                    shape.imports_memory |= matches!(import.ty, TypeRef::Memory(_));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    match export.kind {
                        ExternalKind::Func => shape.func_exports.push(export.name.to_owned()),
                        ExternalKind::Memory => shape.memory_exports.push(export.name.to_owned()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    shape
}

#[test]
fn every_function_is_a_wasi_p1_command() {
    let names = wisp_testkit::function_names();
    assert!(names.len() >= wisp_testkit::RUST_FUNCTIONS.len());
    for name in names {
        let path = wisp_testkit::function_path(name);
        assert!(
            path.ends_with(format!("{name}.wasm")),
            "{name}: unexpected artefact {}",
            path.display()
        );
        let bytes = wisp_testkit::function_bytes(name);
        assert_eq!(&bytes[..8], b"\0asm\x01\0\0\0", "{name}: not a wasm module");
        let shape = shape(name, &bytes);
        assert!(
            shape.func_exports.iter().any(|e| e == "_start"),
            "{name}: no `_start` export (not a command module): {:?}",
            shape.func_exports
        );
        assert_eq!(shape.memory_exports, ["memory"], "{name}: memory export");
        assert!(!shape.imports_memory, "{name}: imports its memory");
        assert!(
            !shape.import_modules.is_empty(),
            "{name}: imports nothing, so it cannot read stdin"
        );
        for module in &shape.import_modules {
            assert_eq!(
                module, "wasi_snapshot_preview1",
                "{name}: imports from a module other than WASI preview 1"
            );
        }
    }
}

#[test]
fn function_bytes_are_the_file_at_function_path() {
    let path = wisp_testkit::function_path("hello");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        wisp_testkit::function_bytes("hello")
    );
    assert!(path.starts_with(wisp_testkit::functions_target_dir()));
}

#[test]
fn every_function_package_is_known_to_the_testkit() {
    // A function added to functions/Cargo.toml but not to RUST_FUNCTIONS would silently go
    // untested by the crates that iterate over function_names().
    let manifest =
        std::fs::read_to_string(wisp_testkit::workspace_root().join("functions/Cargo.toml"))
            .unwrap();
    let members_start = manifest.find("members = [").expect("a members list");
    let members_end = members_start + manifest[members_start..].find(']').unwrap();
    let members: Vec<&str> = manifest[members_start..members_end]
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    let mut members = members;
    members.sort_unstable();
    let mut known = wisp_testkit::RUST_FUNCTIONS.to_vec();
    known.sort_unstable();
    assert_eq!(members, known);
}

#[test]
fn an_unknown_function_panics_with_the_list_of_known_ones() {
    let err = std::panic::catch_unwind(AssertUnwindSafe(|| {
        wisp_testkit::function_path("no-such-function")
    }))
    .expect_err("an unknown name must panic");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("no-such-function"), "{message}");
    assert!(
        message.contains("known functions: hello, echo"),
        "{message}"
    );
}

#[test]
fn the_c_action_is_built_whenever_clang_and_wasi_libc_are_installed() {
    let toolchain = std::path::Path::new("/usr/lib/wasm32-wasi/libc.a").is_file()
        && std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|dir| dir.join("clang").is_file());
    match wisp_testkit::c_function_path() {
        Some(path) => {
            assert!(path.ends_with("hello-c.wasm"));
            assert!(wisp_testkit::function_names().contains(&"hello-c"));
            assert_eq!(wisp_testkit::function_path("hello-c"), path);
        }
        None if toolchain => panic!("clang and wasi-libc are installed but hello-c did not build"),
        None => {
            eprintln!("note: clang + wasi-libc not installed; the C action is skipped");
            assert!(!wisp_testkit::function_names().contains(&"hello-c"));
        }
    }
}
