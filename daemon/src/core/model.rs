use std::fmt;

use crate::core::VmId;

pub type HartId = u32;

/// The service class an orchestrator asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Every vCPU holds a VS-file (AIA mode HWACCEL), or the VM is refused.
    Guaranteed,
    /// VS-files while free, MRIF otherwise (AIA mode AUTO).
    Burstable,
    /// Never takes a VS-file (AIA mode EMUL).
    BestEffort,
}

impl Class {
    pub fn aia_mode(self) -> AiaMode {
        match self {
            Class::Guaranteed => AiaMode::Hwaccel,
            Class::Burstable => AiaMode::Auto,
            Class::BestEffort => AiaMode::Emul,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Guaranteed => "guaranteed",
            Class::Burstable => "burstable",
            Class::BestEffort => "best-effort",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// KVM's per-VM AIA mode (`KVM_DEV_RISCV_AIA_CONFIG_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiaMode {
    Emul,
    Hwaccel,
    Auto,
}

impl AiaMode {
    /// The value KVM's uapi gives the mode.
    pub fn kvm_value(self) -> u32 {
        match self {
            AiaMode::Emul => 0,
            AiaMode::Hwaccel => 1,
            AiaMode::Auto => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AiaMode::Emul => "emul",
            AiaMode::Hwaccel => "hwaccel",
            AiaMode::Auto => "auto",
        }
    }
}

impl fmt::Display for AiaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a vCPU's guest interrupt file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// A hardware guest interrupt file of its hart.
    VsFile,
    /// A memory-resident interrupt file: every access traps to KVM.
    Mrif,
}

impl Backing {
    pub fn as_str(self) -> &'static str {
        match self {
            Backing::VsFile => "vsfile",
            Backing::Mrif => "mrif",
        }
    }
}

/// One vCPU of one VM.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct VcpuKey {
    pub vm: VmId,
    pub vcpu: u32,
}
