"""driver-probe (tests/driver/driver_probe.cc) from a test: it starts the
plugin binary as Nomad's client does and takes one JSON command a line
(start, exec, stop, wait, stats, events). `Probe` runs it under a name
(the flavor follows the plugin's name), with a plugin config, in a work
directory that holds the driver's state dir and the allocation dir; with
`run_as` (an argv prefix such as setpriv's) and `env` it runs as another
user, who then owns the allocation dir."""
import json
import os
import pathlib
import subprocess

from husktest import ROOT

PROBE = os.path.join(ROOT, "build", "tests", "driver", "driver-probe")
PLUGIN = os.path.join(ROOT, "build", "src", "driver", "nomad-driver-husk")


class Probe:
    def __init__(self, workdir, name="nomad-driver-podman", plugin_config=None, plugin_args=(), run_as=(), env=None,
                 owner=None):
        self.workdir = pathlib.Path(workdir)
        self.state = self.workdir / "driver-state"
        self.alloc = self.workdir / "alloc"
        self.alloc.mkdir()
        if owner:
            os.chown(self.alloc, *owner)
        plugin = self.workdir / name
        os.symlink(PLUGIN, plugin)
        env = dict(os.environ if env is None else env, PROBE_PLUGIN_CONFIG=json.dumps(plugin_config or {}))
        self.p = subprocess.Popen([*run_as, PROBE, plugin, f"--state-dir={self.state}", *plugin_args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.running = set()
        first = self.answer()
        assert first["ok"], first

    def answer(self):
        line = self.p.stdout.readline()
        assert line, "driver-probe ended"
        return json.loads(line)

    def call(self, **op):
        self.p.stdin.write(json.dumps(op) + "\n")
        self.p.stdin.flush()
        return self.answer()

    def start(self, task_id, config, **extra):
        r = self.call(op="start", id=task_id, dir=str(self.alloc), config=config, **extra)
        if r["ok"]:
            self.running.add(task_id)
        return r

    def stop(self, task_id):
        self.running.discard(task_id)
        return self.call(op="stop", id=task_id)

    def sh(self, task_id, script, **extra):
        r = self.call(op="exec", id=task_id, cmd=["/bin/sh", "-c", script], **extra)
        assert r["ok"], r
        return r

    def events(self, task_id):
        return self.call(op="events", id=task_id)["events"]

    def task_dir(self, cid):
        return self.state / "tasks" / cid

    def close(self):
        # Tasks outlive the plugin by design: a failed test stops its own.
        for task_id in list(self.running):
            self.stop(task_id)
        self.p.stdin.write('{"op":"quit"}\n')
        self.p.stdin.close()
        self.p.wait(timeout=30)
