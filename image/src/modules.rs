//! Kernel modules: picking the modules a board needs (and what they depend on, from the kernel's
//! modules.dep made by `depmod -b`) out of Debian's kernel package, copying them into the root
//! filesystem or initramfs, and writing the order init loads them in.

use crate::error::{Error, IoContext, Result};
use crate::exec;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel's modules as depmod sees them.
pub struct ModuleTree {
    /// The unpacked kernel package (holds lib/modules/<release>).
    pub root: PathBuf,
    pub release: String,
    /// Module name (with `_`) -> path relative to lib/modules/<release>.
    paths: BTreeMap<String, String>,
    /// Relative path -> the relative paths it depends on.
    deps: BTreeMap<String, Vec<String>>,
    /// Names of modules built into the kernel.
    builtin: BTreeSet<String>,
}

/// A module name with `-` and `_` made the same, as the kernel treats them.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(rel_path: &str) -> String {
    let file = rel_path.rsplit('/').next().unwrap_or(rel_path);
    let stem = file.split(".ko").next().unwrap_or(file);
    canonical(stem)
}

impl ModuleTree {
    /// Runs depmod on the unpacked kernel at `root` (if not yet done) and reads modules.dep.
    pub fn open(root: &Path) -> Result<ModuleTree> {
        let release = kernel_release(root)?;
        let mod_dir = root.join("lib/modules").join(&release);
        if !mod_dir.join("modules.dep").exists() {
            exec::run(Command::new("depmod").arg("-b").arg(root).arg(&release))?;
        }
        let dep_file = mod_dir.join("modules.dep");
        let dep_text =
            std::fs::read_to_string(&dep_file).with_context_io(|| format!("reading {}", dep_file.display()))?;
        let builtin_text = std::fs::read_to_string(mod_dir.join("modules.builtin")).unwrap_or_default();
        let (paths, deps) = parse_modules_dep(&dep_text);
        let builtin = builtin_text.lines().map(module_name).collect();
        Ok(ModuleTree { root: root.to_path_buf(), release, paths, deps, builtin })
    }

    /// The directory lib/modules/<release> of the unpacked kernel.
    pub fn dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// The module files to load for `names`, dependencies first, each once. Built-in modules are
    /// skipped; an unknown module is an error naming it.
    pub fn load_order(&self, names: &[String]) -> Result<Vec<String>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            let c = canonical(name);
            if self.builtin.contains(&c) {
                continue;
            }
            let rel = self
                .paths
                .get(&c)
                .ok_or_else(|| Error::Kernel(format!("kernel {} has no module `{name}`", self.release)))?;
            self.visit(rel, &mut seen, &mut order);
        }
        Ok(order)
    }

    fn visit(&self, rel: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(rel.to_string()) {
            return;
        }
        // modules.dep lists the full closure, deepest last: load them in reverse.
        for dep in self.deps.get(rel).into_iter().flatten().rev() {
            self.visit(dep, seen, order);
        }
        order.push(rel.to_string());
    }

    /// Copies the given modules into `dest_root`/lib/modules/<release>/ with the kernel's module
    /// metadata, and runs depmod there so modprobe works on the box.
    pub fn install(&self, rels: &[String], dest_root: &Path) -> Result<()> {
        let dest = dest_root.join("lib/modules").join(&self.release);
        for rel in rels {
            self.copy_module(rel, &dest)?;
        }
        for meta in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
            let from = self.dir().join(meta);
            if from.exists() {
                std::fs::copy(&from, dest.join(meta))
                    .with_context_io(|| format!("copying {} to {}", from.display(), dest.display()))?;
            }
        }
        exec::run(Command::new("depmod").arg("-b").arg(dest_root).arg(&self.release))?;
        Ok(())
    }
}

impl ModuleTree {
    /// Copies one module under `dest` (a lib/modules/<release> directory), decompressed: busybox's
    /// insmod loads plain .ko files. Returns the path it was copied to, relative to `dest`.
    pub fn copy_module(&self, rel: &str, dest: &Path) -> Result<String> {
        let plain = installed_name(rel);
        let to = dest.join(&plain);
        let parent = to.parent().unwrap_or(dest);
        std::fs::create_dir_all(parent).with_context_io(|| format!("creating {}", parent.display()))?;
        let from = self.dir().join(rel);
        if rel.ends_with(".xz") {
            let out = exec::output(Command::new("xz").arg("-dc").arg(&from))?;
            std::fs::write(&to, out.stdout).with_context_io(|| format!("writing {}", to.display()))?;
        } else if rel.ends_with(".zst") {
            let out = exec::output(Command::new("zstd").arg("-dcq").arg(&from))?;
            std::fs::write(&to, out.stdout).with_context_io(|| format!("writing {}", to.display()))?;
        } else {
            std::fs::copy(&from, &to).with_context_io(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        Ok(plain)
    }
}

/// The name a module has in the image: compressed modules are stored decompressed.
pub fn installed_name(rel: &str) -> String {
    rel.trim_end_matches(".xz").trim_end_matches(".zst").trim_end_matches(".gz").to_string()
}

/// Parses modules.dep: module name -> path, and path -> dependencies.
pub fn parse_modules_dep(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut paths = BTreeMap::new();
    let mut deps = BTreeMap::new();
    for line in text.lines() {
        let Some((module, rest)) = line.split_once(':') else { continue };
        let module = module.trim().to_string();
        paths.insert(module_name(&module), module.clone());
        deps.insert(module, rest.split_whitespace().map(String::from).collect());
    }
    (paths, deps)
}

/// The single kernel release under `root`/lib/modules.
pub fn kernel_release(root: &Path) -> Result<String> {
    let modules = root.join("lib/modules");
    let mut releases: Vec<String> = std::fs::read_dir(&modules)
        .with_context_io(|| format!("reading {}", modules.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kernel").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    releases.sort();
    releases.pop().ok_or_else(|| Error::Kernel(format!("no kernel modules under {}", root.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dep: &str, builtin: &str) -> ModuleTree {
        let (paths, deps) = parse_modules_dep(dep);
        ModuleTree {
            root: PathBuf::new(),
            release: "6.1.0-test".into(),
            paths,
            deps,
            builtin: builtin.lines().map(module_name).collect(),
        }
    }

    #[test]
    fn dependencies_come_first_once_and_builtins_are_skipped() {
        let t = tree(
            "kernel/a/vivid.ko: kernel/a/v4l2-tpg.ko kernel/a/videodev.ko kernel/a/mc.ko\n\
             kernel/a/v4l2-tpg.ko:\nkernel/a/videodev.ko: kernel/a/mc.ko\nkernel/a/mc.ko:\n\
             kernel/s/snd-aloop.ko: kernel/s/snd-pcm.ko\nkernel/s/snd-pcm.ko:\n",
            "kernel/net/packet/af_packet.ko\n",
        );
        let order = t.load_order(&["af_packet".into(), "vivid".into(), "videodev".into(), "snd_aloop".into()]).unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/a/mc.ko",
                "kernel/a/videodev.ko",
                "kernel/a/v4l2-tpg.ko",
                "kernel/a/vivid.ko",
                "kernel/s/snd-pcm.ko",
                "kernel/s/snd-aloop.ko"
            ]
        );
    }

    #[test]
    fn an_unknown_module_is_named_in_the_error() {
        let t = tree("kernel/a/x.ko:\n", "");
        let err = t.load_order(&["nosuch-mod".into()]).unwrap_err().to_string();
        assert!(err.contains("nosuch-mod"), "{err}");
    }
}
