//! Compiles every `bpf/*.bpf.c` into a BPF object and a Rust skeleton under
//! `OUT_DIR`, and writes `OUT_DIR/skeletons.rs`, which `src/skel.rs` includes.
//!
//! clang is run here rather than through libbpf-cargo's builder for two
//! reasons: its `-MD` depfile tells which headers each object read, so that
//! touching one `.bpf.c` rebuilds only that object, and its warnings can be
//! shown (`cargo:warning`) instead of being dropped. libbpf-cargo then only
//! generates the skeleton from the object.
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

/// The name the kernel's headers (and bpf_tracing.h) use for an architecture.
fn kernel_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "riscv64" => "riscv",
        "s390x" => "s390",
        "powerpc64" => "powerpc",
        "loongarch64" => "loongarch",
        other => other,
    }
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

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let bpf_dir = manifest.join("bpf");

    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=headers");
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

    let mut sources: Vec<PathBuf> = fs::read_dir(&bpf_dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", bpf_dir.display())))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();

    let mut cflags: Vec<OsString> = [
        "-g",
        "-O2",
        "-target",
        "bpf",
        // v3: 32-bit jumps and atomics whose return value is used.
        "-mcpu=v3",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers",
        "-fno-stack-protector",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    cflags.push(format!("-D__TARGET_ARCH_{}", kernel_arch(&arch)).into());
    for dir in [&vmlinux_dir, &bpf_dir, &include_dir] {
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
            .arg(&obj);
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
            if let Err(e) = SkeletonBuilder::new()
                .obj(&obj)
                .rustfmt(&rustfmt)
                .generate(&skel)
            {
                fail(&format!("generating the skeleton for bpf/{file}: {e:#}"));
            }
            write_if_changed(&cmdfile, cmdline.as_bytes());
        }
        modules.insert(
            stem.clone(),
            (skel, shared_structs(&bpf_dir.join(format!("{stem}.h")))),
        );
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
    for (stem, (skel, structs)) in &modules {
        index.push_str(&format!(
            "#[allow(clippy::all, clippy::pedantic, missing_docs, non_camel_case_types, dead_code)]\n\
             pub mod {stem} {{\n    include!({skel:?});\n"
        ));
        for name in structs {
            index.push_str(&format!(
                "    // SAFETY: declared in bpf/{stem}.h, whose structs hold integers only.\n    \
                 unsafe impl plain::Plain for types::{name} {{}}\n"
            ));
        }
        index.push_str("}\n");
    }
    write_if_changed(&out_dir.join("skeletons.rs"), index.as_bytes());
}
