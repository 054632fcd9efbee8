//! Compiles every `bpf/*.bpf.c` (the lessons), `bpf/bench/*.bpf.c` (the
//! benchmarks' programs) and `bpf/doctor/*.bpf.c` (the doctor's probes)
//! into a BPF object and a Rust skeleton under `OUT_DIR`, and writes
//! `OUT_DIR/skeletons.rs`, which `src/lib.rs` includes as the `skel` module.
//!
//! clang is run here rather than through libbpf-cargo's builder for two
//! reasons: its `-MD` depfile tells which headers each object read, so that
//! touching one `.bpf.c` rebuilds only that object, and its warnings can be
//! shown (`cargo:warning`) instead of being dropped. libbpf's static linker
//! then copies the object without its DWARF debug info (`bpftool gen object`
//! does the same): the skeleton embeds the object as a byte array, and the
//! DWARF of vmlinux.h's types is over 90% of it, while BTF, which the loader
//! and the verifier's source-line annotations use, stays. libbpf-cargo then
//! only generates the skeleton from the linked object.
//!
//! Each missing prerequisite ends the build with one line that names the
//! `make` target that fixes it.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::SystemTime;

use libbpf_cargo::SkeletonBuilder;

/// Prints one line and stops the build.
fn fail(msg: &str) -> ! {
    eprintln!("learning-ebpf-rs: {msg}");
    exit(1);
}

/// scripts/bpf-cflags: the compiler flags (shared with `make raw`), and the
/// name the kernel's headers (and bpf_tracing.h) use for `arch`.
fn bpf_cflags(manifest: &Path, arch: &str) -> (Vec<OsString>, String) {
    let path = manifest.join("scripts").join("bpf-cflags");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    let mut flags = Vec::new();
    let mut kernel_arch = arch.to_string();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("arch:").and_then(|m| m.split_once('=')) {
            Some((uname, name)) if uname == arch => kernel_arch = name.to_string(),
            Some(_) => {}
            None => flags.push(OsString::from(line)),
        }
    }
    (flags, kernel_arch)
}

/// Runs `tool --version`; false when it cannot be started or fails.
fn tool_works(tool: &Path) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Writes a file only when its content changes, so its mtime stays put and
/// objects that depend on it are not rebuilt for nothing.
fn write_if_changed(path: &Path, content: &[u8]) {
    if fs::read(path).ok().as_deref() == Some(content) {
        return;
    }
    if let Err(e) = fs::write(path, content) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Writes `input` to `output` through libbpf's BPF static linker, which
/// keeps programs, maps, BTF and BTF.ext and leaves out DWARF sections.
fn link_without_dwarf(input: &Path, output: &Path) -> Result<(), String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let c_path = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string());
    let (input_c, output_c) = (c_path(input)?, c_path(output)?);
    let errno = || std::io::Error::last_os_error();
    // SAFETY: libbpf's linker API on NUL-terminated paths that outlive the
    // calls; the linker is freed on every path out.
    unsafe {
        let linker = libbpf_sys::bpf_linker__new(output_c.as_ptr(), std::ptr::null_mut());
        if linker.is_null() {
            return Err(format!("cannot create {}: {}", output.display(), errno()));
        }
        let mut rc = libbpf_sys::bpf_linker__add_file(linker, input_c.as_ptr(), std::ptr::null());
        if rc == 0 {
            rc = libbpf_sys::bpf_linker__finalize(linker);
        }
        let err = errno();
        libbpf_sys::bpf_linker__free(linker);
        if rc != 0 {
            return Err(format!("{}: {err}", input.display()));
        }
    }
    Ok(())
}

/// Files named in a make-style depfile written by `clang -MD`.
fn depfile_inputs(depfile: &Path) -> Option<Vec<PathBuf>> {
    let text = fs::read_to_string(depfile).ok()?;
    let (_, deps) = text.split_once(':')?;
    Some(
        deps.split_whitespace()
            .filter(|d| *d != "\\")
            .map(PathBuf::from)
            .collect(),
    )
}

/// An output is fresh when it was built with the same command and is newer
/// than every file its depfile lists.
fn is_fresh(output: &Path, depfile: &Path, cmdfile: &Path, cmdline: &str) -> bool {
    let Some(built) = mtime(output) else {
        return false;
    };
    if fs::read_to_string(cmdfile).ok().as_deref() != Some(cmdline) {
        return false;
    }
    match depfile_inputs(depfile) {
        Some(inputs) => inputs
            .iter()
            .all(|input| mtime(input).is_some_and(|t| t <= built)),
        None => false,
    }
}

/// The structs declared in a lesson's shared header `bpf/<lesson>.h`. They
/// are the records user space reads from maps and ring buffers, so the
/// generated types get a `plain::Plain` impl. The project's rule for these
/// headers: integer fields (and arrays of them) only, so every bit pattern is
/// a valid value.
fn shared_structs(header: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(header) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("struct "))
        .filter_map(|rest| rest.strip_suffix(" {"))
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect()
}

/// The shared headers of a BPF source: `bpf/<stem>.h`, and the headers of
/// `bpf/` that it or the headers of `bpf/lib/` it includes name (two
/// lessons that share one, like lsm_guard and cgroup_guard with guard.h).
fn shared_headers(bpf_dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut headers = vec![bpf_dir.join(format!("{stem}.h"))];
    let mut sources = vec![bpf_dir.join(format!("{stem}.bpf.c"))];
    while let Some(source) = sources.pop() {
        let text = fs::read_to_string(&source).unwrap_or_default();
        for line in text.lines() {
            let Some(name) = line
                .strip_prefix("#include \"")
                .and_then(|rest| rest.strip_suffix('"'))
            else {
                continue;
            };
            let path = source.parent().unwrap_or(bpf_dir).join(name);
            if name.starts_with("lib/") {
                sources.push(path);
            } else if path.parent().and_then(|p| p.canonicalize().ok())
                == bpf_dir.canonicalize().ok()
                && name != "vmlinux.h"
                && !headers
                    .iter()
                    .any(|h| h.ends_with(path.file_name().unwrap()))
            {
                headers.push(path);
            }
        }
    }
    headers
}

/// The fields of `pub struct NAME { ... }` in a generated skeleton, as
/// (field, Rust type), or None when the skeleton has no such struct.
fn struct_fields(skel: &str, name: &str) -> Option<Vec<(String, String)>> {
    let start = skel.find(&format!("pub struct {name} {{"))?;
    let rest = &skel[start..];
    let body = &rest[rest.find('{')? + 1..rest.find('}')?];
    Some(
        body.lines()
            .filter_map(|line| {
                let line = line.trim().strip_prefix("pub ")?.strip_suffix(',')?;
                let (field, ty) = line.split_once(": ")?;
                Some((field.trim_start_matches("r#").to_string(), ty.to_string()))
            })
            .collect(),
    )
}

/// Size and alignment of an integer type, or an array (of arrays) of one,
/// as libbpf-cargo writes it; None for anything else.
fn integer_layout(ty: &str) -> Option<(usize, usize)> {
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let (elem, n) = inner.rsplit_once("; ")?;
        let (size, align) = integer_layout(elem)?;
        return Some((size * n.parse::<usize>().ok()?, align));
    }
    match ty {
        "u8" | "i8" => Some((1, 1)),
        "u16" | "i16" => Some((2, 2)),
        "u32" | "i32" => Some((4, 4)),
        "u64" | "i64" => Some((8, 8)),
        _ => None,
    }
}

/// `plain::Plain` lets Rust read a struct from any bytes, which is sound only
/// when every bit pattern is a valid value and nothing is uninitialised:
/// integers and arrays of integers, with no padding. Checks the Rust type
/// libbpf-cargo generated for each shared struct; stops the build, naming
/// the struct and field, if one breaks the rule. Returns, for each struct
/// whose fields are all u64 (the lessons' counters), its field names.
fn check_plain(stem: &str, skel: &Path, structs: &[String]) -> Vec<(String, Vec<String>)> {
    let text = fs::read_to_string(skel)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", skel.display())));
    let mut counters = Vec::new();
    for name in structs {
        let Some(fields) = struct_fields(&text, name) else {
            continue;
        };
        let padding = |at: usize| -> ! {
            fail(&format!(
                "bpf/{stem}.h: struct {name} has padding at byte {at}: shared structs have none \
                 (reorder the fields, or add the padding as a field of its own)"
            ))
        };
        // Lay the fields out as C (and #[repr(C)]) does, looking for gaps.
        let (mut offset, mut max_align) = (0, 1);
        let names: Vec<String> = fields.iter().map(|(f, _)| f.clone()).collect();
        let all_u64 = fields.iter().all(|(_, ty)| ty == "u64");
        for (field, ty) in fields {
            if let Some(at) = field.strip_prefix("__pad_") {
                padding(at.parse().unwrap_or(offset));
            }
            let Some((size, align)) = integer_layout(&ty) else {
                fail(&format!(
                    "bpf/{stem}.h: struct {name} field `{field}` is `{ty}` in Rust: shared structs \
                     hold integers and arrays of integers only (plain::Plain reads them from raw \
                     bytes)"
                ));
            };
            if offset % align != 0 {
                padding(offset);
            }
            offset += size;
            max_align = max_align.max(align);
        }
        if offset % max_align != 0 {
            padding(offset);
        }
        if all_u64 {
            counters.push((name.clone(), names));
        }
    }
    counters
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let bpf_dir = manifest.join("bpf");

    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=headers");
    println!("cargo:rerun-if-changed=scripts/bpf-cflags");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rerun-if-env-changed=BPF_CFLAGS");

    // vmlinux.h for the target architecture: committed for x86_64, made by
    // `make vmlinux` on any other machine.
    let vmlinux_dir = manifest.join("headers").join(&arch);
    if !vmlinux_dir.join("vmlinux.h").is_file() {
        fail(&format!(
            "headers/{arch}/vmlinux.h is missing: run `make vmlinux` on an {arch} machine whose kernel has BTF"
        ));
    }

    let clang = PathBuf::from(env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into()));
    if !tool_works(&clang) {
        fail(&format!(
            "{} not found: run `make setup` (or set BPF_CLANG to a clang with the BPF target)",
            clang.display()
        ));
    }
    let rustfmt = PathBuf::from(env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()));
    if !tool_works(&rustfmt) {
        fail("rustfmt not found (libbpf-cargo formats the skeletons with it): run `make setup`");
    }

    // libbpf's BPF-side headers (bpf_helpers.h, ...) as shipped in libbpf-sys,
    // the same libbpf version the skeletons load with.
    let include_dir = out_dir.join("include");
    fs::create_dir_all(include_dir.join("bpf")).expect("create OUT_DIR/include/bpf");
    for (name, content) in libbpf_sys::API_HEADERS.iter() {
        write_if_changed(&include_dir.join("bpf").join(name), content.as_bytes());
    }

    // The lessons in bpf/, the benchmarks' programs in bpf/bench/, and the
    // doctor's probes in bpf/doctor/; bpf/lib/ holds the headers they share.
    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in [
        bpf_dir.clone(),
        bpf_dir.join("bench"),
        bpf_dir.join("doctor"),
    ] {
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
        sources.extend(
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".bpf.c")),
        );
    }
    sources.sort();

    let (mut cflags, kernel_arch) = bpf_cflags(&manifest, &arch);
    cflags.push(format!("-D__TARGET_ARCH_{kernel_arch}").into());
    for dir in [&vmlinux_dir, &bpf_dir, &bpf_dir.join("lib"), &include_dir] {
        cflags.push("-I".into());
        cflags.push(dir.into());
    }
    if let Ok(extra) = env::var("BPF_CFLAGS") {
        cflags.extend(extra.split_whitespace().map(OsString::from));
    }

    let mut modules = BTreeMap::new();
    for src in &sources {
        let file = src.file_name().unwrap().to_string_lossy().into_owned();
        let stem = file.trim_end_matches(".bpf.c").to_string();
        if !stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            fail(&format!(
                "bpf/{file}: name a BPF source with letters, digits and _ only (it becomes a Rust module)"
            ));
        }
        let compiled = out_dir.join(format!("{stem}.clang.o"));
        let obj = out_dir.join(format!("{stem}.bpf.o"));
        let skel = out_dir.join(format!("{stem}.skel.rs"));
        let depfile = out_dir.join(format!("{stem}.d"));
        let cmdfile = out_dir.join(format!("{stem}.cmd"));

        let mut cmd = Command::new(&clang);
        cmd.args(&cflags)
            .arg("-MD")
            .arg("-MF")
            .arg(&depfile)
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&compiled);
        let cmdline = format!("{cmd:?}");

        if !is_fresh(&skel, &depfile, &cmdfile, &cmdline) {
            let output = cmd
                .output()
                .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", clang.display())));
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                eprintln!("{stderr}");
                fail(&format!(
                    "clang failed to compile bpf/{file} (errors above)"
                ));
            }
            for line in stderr.lines() {
                println!("cargo:warning={line}");
            }
            if let Err(e) = link_without_dwarf(&compiled, &obj) {
                fail(&format!("linking bpf/{file} with libbpf: {e}"));
            }
            if let Err(e) = SkeletonBuilder::new()
                .obj(&obj)
                .rustfmt(&rustfmt)
                .generate(&skel)
            {
                fail(&format!("generating the skeleton for bpf/{file}: {e:#}"));
            }
            write_if_changed(&cmdfile, cmdline.as_bytes());
        }
        // A lesson's own header must have all its structs in the skeleton
        // (the build fails on one missing); a header shared with another
        // lesson contributes those this object uses.
        let generated = fs::read_to_string(&skel).unwrap_or_default();
        let structs: Vec<String> = shared_headers(&bpf_dir, &stem)
            .iter()
            .enumerate()
            .flat_map(|(i, h)| {
                let mut structs = shared_structs(h);
                if i > 0 {
                    structs.retain(|n| generated.contains(&format!("pub struct {n} {{")));
                }
                structs
            })
            .collect();
        let counters = check_plain(&stem, &skel, &structs);
        modules.insert(stem.clone(), (skel, structs, counters));
    }

    // The compiler and its arguments, one per line, for tests that build a
    // variant of a lesson (a check removed with -D) the way this build does.
    let mut clang_args = vec![clang.clone().into_os_string()];
    clang_args.extend(cflags.iter().cloned());
    let clang_args: Vec<String> = clang_args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    write_if_changed(
        &out_dir.join("bpf-clang-args"),
        (clang_args.join("\n") + "\n").as_bytes(),
    );

    // One module per BPF source: `learning_ebpf_rs::skel::<stem>`.
    let mut index = String::from("// Generated by build.rs: one module per bpf/*.bpf.c.\n");
    for (stem, (skel, structs, counters)) in &modules {
        index.push_str(&format!(
            "#[allow(clippy::all, clippy::pedantic, missing_docs, non_camel_case_types, dead_code)]\n\
             pub mod {stem} {{\n    include!({skel:?});\n"
        ));
        for name in structs {
            index.push_str(&format!(
                "    // SAFETY: declared in a shared header of bpf/{stem}.bpf.c, whose structs hold integers only.\n    \
                 unsafe impl plain::Plain for types::{name} {{}}\n"
            ));
        }
        for (name, fields) in counters {
            let adds: Vec<String> = fields
                .iter()
                .map(|f| format!("self.r#{f} = self.r#{f}.wrapping_add(other.r#{f});"))
                .collect();
            index.push_str(&format!(
                "    impl crate::maps::Counters for types::{name} {{\n        \
                 fn add(&mut self, other: &Self) {{\n            {}\n        }}\n    }}\n",
                adds.join("\n            ")
            ));
        }
        index.push_str("}\n");
    }
    write_if_changed(&out_dir.join("skeletons.rs"), index.as_bytes());
}
