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

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::SystemTime;

use libbpf_cargo::SkeletonBuilder;
use libbpf_rs::btf::types::{Array, Int, IntEncoding, MemberAttr, Struct};
use libbpf_rs::btf::{Btf, BtfType, HasSize};

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

/// The structs declared in a shared header: the records user space reads
/// from maps and ring buffers, which the generated types get a
/// `plain::Plain` impl for. The project's rule for these headers: integer
/// fields (and arrays of them) only, no padding, so every bit pattern is a
/// valid value.
fn declared_structs(header: &Path) -> Vec<String> {
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

/// The headers whose types a BPF source shares with Rust: its own
/// `<stem>.h` beside it, and every `*_types.h` it includes, directly or
/// through other headers (bpf/lib/guard_types.h, which lsm_guard and
/// cgroup_guard share). A quoted include is looked up as clang does: next
/// to the including file, then in each `-I` directory.
fn shared_headers(source: &Path, stem: &str, include_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let own = source.with_file_name(format!("{stem}.h"));
    let mut headers = vec![own.canonicalize().unwrap_or(own)];
    let mut to_read = vec![source.to_path_buf()];
    let mut seen = Vec::new();
    while let Some(file) = to_read.pop() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let names = text.lines().filter_map(|line| {
            line.strip_prefix("#include \"")
                .and_then(|rest| rest.strip_suffix('"'))
        });
        for name in names {
            let dirs = file
                .parent()
                .into_iter()
                .chain(include_dirs.iter().map(|d| d.as_path()));
            let Some(path) = dirs.map(|d| d.join(name)).find(|p| p.is_file()) else {
                continue;
            };
            let path = path.canonicalize().unwrap_or(path);
            if seen.contains(&path) {
                continue;
            }
            seen.push(path.clone());
            if name.ends_with("_types.h") && !headers.contains(&path) {
                headers.push(path.clone());
            }
            to_read.push(path);
        }
    }
    headers
}

/// Size and alignment of an integer, or an array (of arrays) of integers,
/// in BTF; None for anything else.
fn integer_layout(ty: BtfType) -> Option<(usize, usize)> {
    let ty = ty.skip_mods_and_typedefs();
    if let Ok(array) = Array::try_from(ty) {
        let (size, align) = integer_layout(array.contained_type())?;
        return Some((size * array.capacity(), align));
    }
    let int = Int::try_from(ty).ok()?;
    let size = int.size();
    matches!(size, 1 | 2 | 4 | 8).then_some((size, size))
}

/// Whether a member's type is an unsigned 64-bit integer (a counter).
fn is_u64(ty: BtfType) -> bool {
    Int::try_from(ty.skip_mods_and_typedefs())
        .is_ok_and(|int| int.bits == 64 && matches!(int.encoding, IntEncoding::None))
}

/// A shared struct whose layout passed [`check_plain`].
struct SharedStruct {
    name: String,
    /// Its field names when every field is a `__u64`: a set of counters,
    /// which get `maps::Counters` to sum per-CPU copies.
    counters: Option<Vec<String>>,
}

/// `plain::Plain` lets Rust read a struct from any bytes, which is sound only
/// when every bit pattern is a valid value and nothing is uninitialised:
/// integers and arrays of integers, with no padding. Checks each shared
/// struct as the object's BTF lays it out, the layout the generated Rust
/// type copies; stops the build, naming the struct and field, if one
/// breaks the rule.
fn check_plain(header: &Path, btf: &Btf, name: &str) -> SharedStruct {
    // As the reader knows it: bpf/..., not the absolute path.
    let header = header.to_string_lossy();
    let header = header.rfind("/bpf/").map_or(&*header, |i| &header[i + 1..]);
    let Some(st) = btf.type_by_name::<Struct>(name) else {
        fail(&format!(
            "{header}: struct {name} is not in the BPF object: use it there (a map's key or \
             value, or a global) so that the skeleton has its type"
        ));
    };
    let padding = |at: usize| -> ! {
        fail(&format!(
            "{header}: struct {name} has padding at byte {at}: shared structs have none \
             (reorder the fields, or add the padding as a field of its own)"
        ))
    };
    let mut end = 0;
    let mut counters = Some(Vec::new());
    for member in st.iter() {
        let field = member
            .name
            .map_or("?".into(), |n| n.to_string_lossy().into_owned());
        let ty = btf.type_by_id::<BtfType>(member.ty);
        let layout = ty.and_then(integer_layout);
        let (Some((size, align)), MemberAttr::Normal { offset }) = (layout, member.attr) else {
            fail(&format!(
                "{header}: struct {name} field `{field}` is not an integer: shared structs hold \
                 integers and arrays of integers only (plain::Plain reads them from raw bytes)"
            ));
        };
        let offset = offset as usize / 8;
        if offset != end || offset % align != 0 {
            padding(end);
        }
        end = offset + size;
        match (&mut counters, ty.is_some_and(is_u64)) {
            (Some(names), true) => names.push(field),
            _ => counters = None,
        }
    }
    if end != st.size() {
        padding(end);
    }
    SharedStruct {
        name: name.to_string(),
        counters,
    }
}

/// What the build knows from cargo: where things are, and for which arch.
struct Paths {
    manifest: PathBuf,
    out_dir: PathBuf,
    arch: String,
    bpf_dir: PathBuf,
}

impl Paths {
    fn from_cargo() -> Paths {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
        Paths {
            out_dir: PathBuf::from(env::var("OUT_DIR").expect("set by cargo")),
            arch: env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo"),
            bpf_dir: manifest.join("bpf"),
            manifest,
        }
    }
}

/// The tools the build runs: clang with the BPF target, and rustfmt, which
/// libbpf-cargo formats the skeletons with. Also checks vmlinux.h.
struct Tools {
    clang: PathBuf,
    rustfmt: PathBuf,
    vmlinux_dir: PathBuf,
}

fn find_tools(paths: &Paths) -> Tools {
    // vmlinux.h for the target architecture: committed for x86_64, made by
    // `make vmlinux` on any other machine.
    let arch = &paths.arch;
    let vmlinux_dir = paths.manifest.join("headers").join(arch);
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
    Tools {
        clang,
        rustfmt,
        vmlinux_dir,
    }
}

/// libbpf's BPF-side headers (bpf_helpers.h, ...) as shipped in libbpf-sys,
/// the same libbpf version the skeletons load with, under OUT_DIR/include.
fn write_libbpf_headers(out_dir: &Path) -> PathBuf {
    let include_dir = out_dir.join("include");
    fs::create_dir_all(include_dir.join("bpf")).expect("create OUT_DIR/include/bpf");
    for (name, content) in libbpf_sys::API_HEADERS.iter() {
        write_if_changed(&include_dir.join("bpf").join(name), content.as_bytes());
    }
    include_dir
}

/// The lessons in bpf/, the benchmarks' programs in bpf/bench/, and the
/// doctor's probes in bpf/doctor/ (bpf/lib/ holds the headers they share).
fn bpf_sources(bpf_dir: &Path) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for dir in [
        bpf_dir.to_path_buf(),
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
    sources
}

/// The include directories, in clang's order after the including file's.
fn include_dirs(paths: &Paths, tools: &Tools, libbpf_headers: &Path) -> Vec<PathBuf> {
    vec![
        tools.vmlinux_dir.clone(),
        paths.bpf_dir.clone(),
        paths.bpf_dir.join("lib"),
        libbpf_headers.to_path_buf(),
    ]
}

/// scripts/bpf-cflags, the target arch, the include directories, and
/// `BPF_CFLAGS` from the environment.
fn clang_flags(paths: &Paths, include_dirs: &[PathBuf]) -> Vec<OsString> {
    let (mut cflags, kernel_arch) = bpf_cflags(&paths.manifest, &paths.arch);
    cflags.push(format!("-D__TARGET_ARCH_{kernel_arch}").into());
    for dir in include_dirs {
        cflags.push("-I".into());
        cflags.push(dir.into());
    }
    if let Ok(extra) = env::var("BPF_CFLAGS") {
        cflags.extend(extra.split_whitespace().map(OsString::from));
    }
    cflags
}

/// One BPF source, built: its skeleton, and its shared structs.
struct Module {
    stem: String,
    skel: PathBuf,
    structs: Vec<SharedStruct>,
}

/// Compiles `src` with clang, links it without DWARF and generates its
/// skeleton, unless the outputs are fresh; then checks its shared structs.
fn build_object(
    paths: &Paths,
    tools: &Tools,
    cflags: &[OsString],
    include_dirs: &[PathBuf],
    src: &Path,
) -> Module {
    let file = src.file_name().unwrap().to_string_lossy().into_owned();
    let stem = file.trim_end_matches(".bpf.c").to_string();
    if !stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        fail(&format!(
            "bpf/{file}: name a BPF source with letters, digits and _ only (it becomes a Rust module)"
        ));
    }
    let out = |ext: &str| paths.out_dir.join(format!("{stem}.{ext}"));
    let (compiled, obj, skel) = (out("clang.o"), out("bpf.o"), out("skel.rs"));
    let (depfile, cmdfile) = (out("d"), out("cmd"));

    let mut cmd = Command::new(&tools.clang);
    cmd.args(cflags)
        .arg("-MD")
        .arg("-MF")
        .arg(&depfile)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&compiled);
    let cmdline = format!("{cmd:?}");
    if !is_fresh(&skel, &depfile, &cmdfile, &cmdline) {
        compile(&mut cmd, &tools.clang, &file);
        if let Err(e) = link_without_dwarf(&compiled, &obj) {
            fail(&format!("linking bpf/{file} with libbpf: {e}"));
        }
        if let Err(e) = SkeletonBuilder::new()
            .obj(&obj)
            .rustfmt(&tools.rustfmt)
            .generate(&skel)
        {
            fail(&format!("generating the skeleton for bpf/{file}: {e:#}"));
        }
        write_if_changed(&cmdfile, cmdline.as_bytes());
    }
    let structs = shared_structs(src, &stem, include_dirs, &obj);
    Module {
        stem,
        skel,
        structs,
    }
}

/// Runs clang; its warnings become cargo warnings, its errors end the build.
fn compile(cmd: &mut Command, clang: &Path, file: &str) {
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
}

/// The shared structs of one object, checked against its BTF. A lesson's
/// own header must have all its structs in the object; a `*_types.h`
/// shared with other lessons contributes those this object has.
fn shared_structs(
    src: &Path,
    stem: &str,
    include_dirs: &[PathBuf],
    obj: &Path,
) -> Vec<SharedStruct> {
    let headers = shared_headers(src, stem, include_dirs);
    if headers.iter().all(|h| declared_structs(h).is_empty()) {
        return Vec::new();
    }
    let btf = Btf::from_path(obj)
        .unwrap_or_else(|e| fail(&format!("reading the BTF of {}: {e}", obj.display())));
    let mut structs = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        for name in declared_structs(header) {
            if i > 0 && btf.type_by_name::<Struct>(&name).is_none() {
                continue;
            }
            structs.push(check_plain(header, &btf, &name));
        }
    }
    structs
}

/// The compiler and its arguments, one per line, for tests that build a
/// variant of a lesson (a check removed with -D) the way this build does.
fn write_clang_args(out_dir: &Path, clang: &Path, cflags: &[OsString]) {
    let args: Vec<String> = std::iter::once(clang.as_os_str())
        .chain(cflags.iter().map(|a| a.as_os_str()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    write_if_changed(
        &out_dir.join("bpf-clang-args"),
        (args.join("\n") + "\n").as_bytes(),
    );
}

/// OUT_DIR/skeletons.rs: one module per BPF source
/// (`learning_ebpf_rs::skel::<stem>`), with `plain::Plain` for its shared
/// structs and `maps::Counters` for those that are counters.
fn write_skeleton_index(out_dir: &Path, modules: &[Module]) {
    let mut index = String::from("// Generated by build.rs: one module per bpf/*.bpf.c.\n");
    for Module {
        stem,
        skel,
        structs,
    } in modules
    {
        index.push_str(&format!(
            "#[allow(clippy::all, clippy::pedantic, missing_docs, non_camel_case_types, dead_code)]\n\
             pub mod {stem} {{\n    include!({skel:?});\n"
        ));
        for SharedStruct { name, counters } in structs {
            index.push_str(&format!(
                "    // SAFETY: declared in a shared header of bpf/{stem}.bpf.c, whose structs hold integers only.\n    \
                 unsafe impl plain::Plain for types::{name} {{}}\n"
            ));
            let Some(fields) = counters else { continue };
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

fn main() {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=headers");
    println!("cargo:rerun-if-changed=scripts/bpf-cflags");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rerun-if-env-changed=BPF_CFLAGS");

    let paths = Paths::from_cargo();
    let tools = find_tools(&paths);
    let libbpf_headers = write_libbpf_headers(&paths.out_dir);
    let include_dirs = include_dirs(&paths, &tools, &libbpf_headers);
    let cflags = clang_flags(&paths, &include_dirs);
    let mut modules: Vec<Module> = bpf_sources(&paths.bpf_dir)
        .iter()
        .map(|src| build_object(&paths, &tools, &cflags, &include_dirs, src))
        .collect();
    modules.sort_by(|a, b| a.stem.cmp(&b.stem));
    write_clang_args(&paths.out_dir, &tools.clang, &cflags);
    write_skeleton_index(&paths.out_dir, &modules);
}
