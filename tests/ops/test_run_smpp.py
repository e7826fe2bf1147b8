"""`smsgw run` with SMSGW_SMPP_PORT set: it starts the SMPP listener too and prints a
login for the demo tenant; an ESME (smpplib) binds with it, submits, and gets the
simulator's receipt back as a deliver_sm. Ctrl-C stops the listener with the rest."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from smsgw import processes
from tests.ops.test_run_command import _read_banner, data_dir  # noqa: F401
from tests.smpp_server import esme as e


def test_run_starts_an_smpp_listener_a_demo_esme_can_bind_to(data_dir):  # noqa: F811
    port, smpp_port = processes.free_port(), processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "SMSGW_DATA_DIR": str(data_dir),
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "0.2",
            "SMSGW_SMPP_PORT": str(smpp_port),
        }
    )
    proc = subprocess.Popen(
        processes.smsgw_command("run", "--port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _read_banner(proc, time.monotonic() + 120)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while not line.strip():
            line = proc.stdout.readline()
        login = re.search(
            rf"SMPP 3.4 listener on 127.0.0.1:{smpp_port}: bind as system_id (\S+), "
            r"password (\S+) .*source_addr (\d+)",
            line,
        )
        assert login, line
        # From the demo tenant's number, as the banner says (a sender must be its own).
        client = e.Esme(smpp_port, login.group(1), login.group(2), source=login.group(3))
        client.bind()
        status, message_id = client.submit(
            destination_addr="14155552671", text="Hello over SMPP", registered_delivery=1
        )
        assert status == e.ESME_ROK
        client.read_until(lambda: any(True for _ in client.receipts()), 60)
        (receipt,) = client.receipts()
        assert receipt.receipted_message_id == message_id
        assert receipt.receipt_fields()["stat"] == "DELIVRD"
        client.unbind()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0
    # The listener went with the rest: nothing answers on its port.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", smpp_port), timeout=5)
