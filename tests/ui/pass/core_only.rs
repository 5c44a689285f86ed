//! `crate = ...` for users who depend on the core crate only.
use event_backbone_core as core_only;

#[event_backbone::event_contract(crate = core_only, rename_all = "PascalCase")]
pub trait Shipments {
    async fn packed(&self, order: u64);
}

fn main() {
    assert_eq!(Shipments::OPERATIONS[0].name, "Packed");
}
