//! Modbus TCP client (coils and discrete inputs) for plugins, blocking std I/O, builds for wasm32-wasip2
