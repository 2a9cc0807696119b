#!/usr/bin/env python3
"""A real OSDP peripheral device (PD) for vigil-osdp's tests: libosdp's PD.

Runs libosdp (PyPI `libosdp`, pinned in requirements.txt; run it with the
project venv's python) as a PD on one end of a serial line (in the tests, a
PTY pair made by socat), with a reader LED, a buzzer and the given number of
inputs (door contacts) and outputs (lock relays).

Reports on stdout, one JSON object a line, flushed:

  {"event": "ready"}                             the PD is listening
  {"event": "command", "command": "output", ...} a command reached the PD
                                                 (output, led, buzzer, status,
                                                 keyset, comset, ...), with
                                                 libosdp's fields
  {"event": "sc", "active": true}                secure channel came up / went down
  {"event": "ok", "line": "..."}                 a control line was applied
  {"event": "error", "message": "..."}           a control line was refused

Takes control lines on stdin:

  input N 0|1     set input N (0-based); the PD reports its inputs
                  (osdp_ISTATR) in reply to the CP's next osdp_POLL
  silent on|off   stop answering (and drop what arrives) / answer again
  noise HEX       write these raw bytes on the line, towards the CP
  quit            exit

Every output change is reported the same way (osdp_OSTATR on the next poll).
Direct osdp_ISTAT/osdp_OSTAT/osdp_LSTAT cannot be answered through libosdp
3.2.9's Python binding: the report the command callback returns never reaches
the reply, so the PD NAKs them with code 9 (its own Python control panel gets
the same). The callback still fills the report in, for a libosdp that fixes
this. A PD started with `--inputs 0` NAKs osdp_ISTAT with code 3.

The PD enforces the secure channel when given a key (it NAKs anything but the
handshake in the clear). With `--scbk install` it has no key and is in
install mode: it only accepts the well-known default key SCBK-D.
"""

import argparse
import errno
import json
import os
import sys
import threading
import time

import osdp

# OSDP output control codes (osdp_OUT), as the PD applies them.
OUT_PERMANENT_OFF = (1, 3)
OUT_PERMANENT_ON = (2, 4)
OUT_TEMPORARY_ON = 5
OUT_TEMPORARY_OFF = 6

COMMAND_NAMES = {
    osdp.Command.Output: "output",
    osdp.Command.Buzzer: "buzzer",
    osdp.Command.LED: "led",
    osdp.Command.Comset: "comset",
    osdp.Command.ComsetDone: "comset_done",
    osdp.Command.Text: "text",
    osdp.Command.Manufacturer: "manufacturer",
    osdp.Command.Keyset: "keyset",
    osdp.Command.FileTransfer: "file_transfer",
    osdp.Command.Status: "status",
}

STATUS_NAMES = {
    osdp.StatusReportType.Input: "input",
    osdp.StatusReportType.Output: "output",
    osdp.StatusReportType.Local: "local",
    osdp.StatusReportType.Remote: "remote",
}

out_lock = threading.Lock()


def emit(**fields):
    """Writes one JSON line on stdout."""
    line = json.dumps(fields, default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class SerialChannel(osdp.Channel):
    """The PD's end of the serial line, non-blocking; drops everything while silent."""

    def __init__(self, path):
        super().__init__()
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.silent = False

    def read(self, max_bytes):
        try:
            data = os.read(self.fd, max_bytes)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                return b""
            raise
        # A silent PD hears nothing, so it never answers.
        return b"" if self.silent else data

    def write(self, buf):
        if self.silent:
            return len(buf)
        try:
            return os.write(self.fd, bytes(buf))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            raise

    def flush(self):
        pass


class Device:
    """The PD's state (inputs, outputs) shared by the command callback and stdin."""

    def __init__(self, inputs, outputs):
        self.lock = threading.Lock()
        self.inputs = [0] * inputs
        self.outputs = [0] * outputs
        # Set once the PD exists. The command callback runs under the PD's
        # lock, so it submits without taking it; the stdin thread takes it.
        self.submit_in_callback = None
        self.submit_from_thread = None

    @staticmethod
    def status_event(kind, bits):
        return {"event": osdp.Event.Status, "type": kind, "report": bytes(bits)}

    def on_command(self, cmd):
        kind = COMMAND_NAMES.get(cmd.get("command"), str(cmd.get("command")))
        fields = {k: v for k, v in cmd.items() if k != "command"}
        if kind == "status":
            fields["type"] = STATUS_NAMES.get(cmd.get("type"), cmd.get("type"))
        emit(event="command", command=kind, **fields)
        with self.lock:
            if kind == "output":
                return self.apply_output(cmd)
            if kind == "status":
                return self.status_report(cmd)
        return 0, None

    def apply_output(self, cmd):
        n, code = cmd["output_no"], cmd["control_code"]
        if n >= len(self.outputs):
            return -1, None
        # Timers are not simulated: a timed output shows its timed state.
        if code in OUT_PERMANENT_OFF or code == OUT_TEMPORARY_OFF:
            self.outputs[n] = 0
        elif code in OUT_PERMANENT_ON or code == OUT_TEMPORARY_ON:
            self.outputs[n] = 1
        self.submit_in_callback(self.status_event(osdp.StatusReportType.Output, self.outputs))
        return 0, None

    def status_report(self, cmd):
        kind = cmd["type"]
        if kind == osdp.StatusReportType.Input:
            bits = self.inputs
        elif kind == osdp.StatusReportType.Output:
            bits = self.outputs
        else:
            # Local status: no tamper, power fine.
            bits = [0, 0]
        return 0, {
            "command": osdp.Command.Status,
            "type": kind,
            "report": bytes(bits),
        }


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serial", required=True, help="the PD's end of the serial line")
    p.add_argument("--address", type=int, default=1, help="PD address, 0-126")
    p.add_argument("--scbk", required=True,
                   help="secure channel base key, 32 hex digits, or 'install' for install mode")
    p.add_argument("--inputs", type=int, default=4, help="number of inputs (door contacts)")
    p.add_argument("--outputs", type=int, default=2, help="number of outputs (relays)")
    p.add_argument("--log-level", default="Warning", help="libosdp log level (on stderr)")
    return p.parse_args()


def control(line, device, channel):
    """Applies one stdin control line; raises ValueError for a bad one."""
    words = line.split()
    if len(words) == 3 and words[0] == "input":
        n, v = int(words[1]), int(words[2])
        with device.lock:
            if not 0 <= n < len(device.inputs):
                raise ValueError(f"no input {n}: the PD has {len(device.inputs)}")
            device.inputs[n] = 1 if v else 0
            report = device.status_event(osdp.StatusReportType.Input, device.inputs)
        device.submit_from_thread(report)
    elif len(words) == 2 and words[0] == "silent" and words[1] in ("on", "off"):
        channel.silent = words[1] == "on"
    elif len(words) == 2 and words[0] == "noise":
        noise = bytes.fromhex(words[1])
        os.write(channel.fd, noise)
    else:
        raise ValueError(f"unknown control line {line!r}")


def main():
    args = parse_args()
    channel = SerialChannel(args.serial)
    device = Device(args.inputs, args.outputs)

    flags = []
    scbk = None
    if args.scbk == "install":
        flags.append(osdp.LibFlag.InstallMode)
    else:
        scbk = bytes.fromhex(args.scbk)
        if len(scbk) != 16:
            sys.exit(f"--scbk must be 16 bytes (32 hex digits), got {len(scbk)}")
        flags.append(osdp.LibFlag.EnforceSecure)

    info = osdp.PDInfo(args.address, channel, scbk=scbk, flags=flags, name="vigil-test-pd")
    caps = osdp.PDCapabilities([
        (osdp.Capability.ContactStatusMonitoring, 1, args.inputs),
        (osdp.Capability.OutputControl, 1, args.outputs),
        (osdp.Capability.LEDControl, 1, 1),
        (osdp.Capability.AudibleControl, 1, 1),
    ])
    pd = osdp.PeripheralDevice(info, caps, log_level=getattr(osdp.LogLevel, args.log_level),
                               command_handler=device.on_command)
    device.submit_in_callback = pd.ctx.submit_event
    device.submit_from_thread = pd.submit_event
    pd.start()
    emit(event="ready")

    stop = threading.Event()

    def watch_sc():
        active = False
        while not stop.is_set():
            now = pd.is_sc_active()
            if now != active:
                active = now
                emit(event="sc", active=active)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_sc, daemon=True)
    watcher.start()

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line == "quit":
            break
        try:
            control(line, device, channel)
            emit(event="ok", line=line)
        except ValueError as e:
            emit(event="error", message=str(e))

    stop.set()
    pd.stop()


if __name__ == "__main__":
    main()
