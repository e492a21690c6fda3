//! The emulated machine type.

/// The emulated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// `q35`: PCI Express, as current VMs and clouds present. The default:
    /// on the older `pc` (i440FX) every virtio-pci device costs the guest
    /// about 80 ms of ACPI interrupt-link setup under TCG when its driver
    /// binds (q35: about 7 ms), which would drown what the initramfs does.
    #[default]
    Q35,
    /// `pc`: i440FX with legacy PCI.
    Pc,
}

impl Machine {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        }
    }
}
