//! OSDP v2.2 control panel with Secure Channel over any byte stream, for plugins; builds for wasm32-wasip2
