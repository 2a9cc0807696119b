//! Vigil's door-lock plugin (being written).
use vigil_plugin_sdk::{Plugin, export_plugin};
struct Skeleton;
impl Plugin for Skeleton {}
export_plugin!(Skeleton);
