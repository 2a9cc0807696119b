#!/usr/bin/env python3
"""A Modbus TCP device for tests: pymodbus's TCP server over a datastore of
coils and discrete inputs that the test steers through stdin.

Run by the venv's Python (pymodbus 3.16). It listens on 127.0.0.1:PORT
(--port 0 picks a free one), prints ``READY <port>`` on stdout, then reads one
JSON command a line on stdin and answers each with one JSON line on stdout:

  {"op": "coils"}                                  -> {"ok": true, "coils": [false, ...]}
  {"op": "set_coils", "start": 0, "values": [true]}            -> {"ok": true}
  {"op": "set_discrete_inputs", "start": 0, "values": [true]} -> {"ok": true}
  {"op": "silent", "on": true}                     -> {"ok": true}
  {"op": "stick", "address": 3, "value": false}    -> {"ok": true}   (value null: unstick)

Addresses are zero-based protocol addresses. A request outside the configured
tables is answered with exception 2 (illegal data address), a quantity outside
the spec's limits with exception 3 (illegal data value). A silent device reads
requests and never answers them. A stuck coil holds its value whatever is
written to it, yet echoes the write like a device whose relay has failed. The
server stops when stdin closes (the test process went away).
"""

import argparse
import asyncio
import json
import sys
import threading

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

# Modbus Application Protocol v1.1b3, sections 6.1, 6.2 and 6.11.
MAX_READ_BITS = 2000
MAX_WRITE_BITS = 1968
READ_COILS, READ_DISCRETE_INPUTS, WRITE_SINGLE_COIL, WRITE_MULTIPLE_COILS = 1, 2, 5, 15


class Device:
    """The datastore pymodbus's request handler calls into: the tables, a
    silent switch and stuck coils, shared between the asyncio loop and the
    control thread under one lock."""

    def __init__(self, coils: int, discrete_inputs: int):
        self.lock = threading.Lock()
        self.coils = [False] * coils
        self.discrete_inputs = [False] * discrete_inputs
        self.stuck: dict[int, bool] = {}
        self.silent = False
        # What the last single-coil write asked for, to echo it as the spec says.
        self.last_single_write = False

    # The interface pymodbus's server calls (the one its SimCore offers).

    def device_ids(self) -> list[int]:
        return [0]

    async def async_getValues(self, device_id, func_code, address, count=1):
        with self.lock:
            if self.silent:
                # With ignore_missing_devices the server drops the request unanswered.
                raise NoSuchIdException("the device is silent")
            if func_code == WRITE_SINGLE_COIL:
                return [self.last_single_write]
            table = self.coils if func_code == READ_COILS else self.discrete_inputs
            if not 1 <= count <= MAX_READ_BITS:
                return ExcCodes.ILLEGAL_VALUE
            if address + count > len(table):
                return ExcCodes.ILLEGAL_ADDRESS
            return list(table[address : address + count])

    async def async_setValues(self, device_id, func_code, address, values):
        with self.lock:
            if self.silent:
                raise NoSuchIdException("the device is silent")
            values = [bool(v) for v in values]
            if func_code == WRITE_MULTIPLE_COILS and not 1 <= len(values) <= MAX_WRITE_BITS:
                return ExcCodes.ILLEGAL_VALUE
            if address + len(values) > len(self.coils):
                return ExcCodes.ILLEGAL_ADDRESS
            if func_code == WRITE_SINGLE_COIL:
                self.last_single_write = values[0]
            for offset, value in enumerate(values):
                here = address + offset
                self.coils[here] = self.stuck.get(here, value)
            return None

    # The control channel.

    def command(self, request: dict) -> dict:
        op = request.get("op")
        with self.lock:
            if op == "coils":
                return {"ok": True, "coils": list(self.coils)}
            if op in ("set_coils", "set_discrete_inputs"):
                table = self.coils if op == "set_coils" else self.discrete_inputs
                start, values = int(request["start"]), [bool(v) for v in request["values"]]
                if start + len(values) > len(table):
                    return {"ok": False, "error": f"{op}: {start}..{start + len(values)} out of range"}
                table[start : start + len(values)] = values
                return {"ok": True}
            if op == "silent":
                self.silent = bool(request["on"])
                return {"ok": True}
            if op == "stick":
                address, value = int(request["address"]), request.get("value")
                if address >= len(self.coils):
                    return {"ok": False, "error": f"coil {address} out of range"}
                if value is None:
                    self.stuck.pop(address, None)
                else:
                    self.stuck[address] = bool(value)
                    self.coils[address] = bool(value)
                return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}


class DeviceServer(ModbusTcpServer):
    """pymodbus's TCP server answering from a `Device` instead of a SimCore."""

    def __init__(self, device: Device, port: int):
        # The placeholder SimDevice satisfies the constructor; requests go to `device`.
        placeholder = SimDevice(0, simdata=SimData(0, values=0, datatype=DataType.REGISTERS))
        super().__init__(placeholder, address=("127.0.0.1", port), ignore_missing_devices=True)
        self.context = device


def control(device: Device, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Serves the JSON-lines control channel until stdin closes."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = device.command(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"bad command {line!r}: {exc}"}
        print(json.dumps(reply), flush=True)
    loop.call_soon_threadsafe(stop.set)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--coils", type=int, default=16)
    parser.add_argument("--discrete-inputs", type=int, default=16)
    args = parser.parse_args()

    device = Device(args.coils, args.discrete_inputs)
    server = DeviceServer(device, args.port)
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=control, args=(device, loop, stop), daemon=True).start()
    await stop.wait()
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
