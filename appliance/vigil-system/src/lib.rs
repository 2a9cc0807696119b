//! The appliance OS over D-Bus and sockets: systemd notify and watchdog, RAUC updates, time sync state, device identity
