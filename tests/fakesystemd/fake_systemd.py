#!/usr/bin/python3
"""A fake systemd for husk's systemd cgroup manager tests: it owns
org.freedesktop.systemd1 on a private D-Bus (address in argv[1]) and
implements the part of org.freedesktop.systemd1.Manager that husk uses
(Subscribe, StartTransientUnit, SetUnitProperties, StopUnit,
ResetFailedUnit, GetUnit) doing
the real cgroup work: it makes the slice and scope directories on the
cgroup2 mount, enables the parents' controllers (Delegate=yes), moves the
PIDs in and reports each job with JobRemoved, after the method's reply as
systemd does. StopUnit kills the scope's processes and removes it.

As root it plays the system manager (slices below the cgroup2 root). Run
as a user with FAKE_SYSTEMD_CGROUP_ROOT set to the cgroup that root
delegated to that user (user.slice/user-UID.slice/user@UID.service, as
systemd's user@.service has it), it plays that user's manager: slices and
scopes go below that cgroup, and it enables the controllers offered there
in its own subtree, as a user manager does in the cgroup it was delegated.
It must then run in a leaf below it (user@UID.service/init.scope, where
systemd --user runs), not in the delegated cgroup itself.

Every call is appended to $FAKE_SYSTEMD_LOG as a JSON line; the units it
knows are written to $FAKE_SYSTEMD_LOG.units after every change. A unit
whose name starts with "fakefail-" gets a failed job (left in state
"failed"), as when systemd cannot start a scope; one starting with
"fakehang-" is made but its start job never reports. "READY" on stdout once
the name is owned.
"""
import json
import os
import signal
import sys
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.freedesktop.systemd1.Manager"
OBJECT = "/org/freedesktop/systemd1"
CGROUP2 = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"
LOG = os.environ.get("FAKE_SYSTEMD_LOG", "/dev/null")
# The manager's own cgroup: "" for the system manager, user@UID.service's
# for a user manager.
MANAGER_ROOT = os.environ.get("FAKE_SYSTEMD_CGROUP_ROOT", "").strip("/")
MANAGER_DIR = os.path.join(CGROUP2, MANAGER_ROOT) if MANAGER_ROOT else CGROUP2


def plain(v):
    """dbus-python values as JSON-able Python ones."""
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Array, list)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Struct, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Dictionary, dict)):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (int, dbus.UInt32, dbus.UInt64, dbus.Int32, dbus.Int64)):
        return int(v)
    return str(v)


def log(**entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def slice_dirs(slice_name):
    """ "a-b.slice" -> ["a.slice", "a.slice/a-b.slice"]; "-.slice" -> []."""
    base = slice_name[:-len(".slice")]
    if base == "-":
        return []
    out, acc, parts = [], "", base.split("-")
    for i, p in enumerate(parts):
        acc = p if i == 0 else acc + "-" + p
        out.append((out[-1] + "/" if out else "") + acc + ".slice")
    return out


def write(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def procs_of(d):
    pids = []
    for root, _dirs, files in os.walk(d):
        if "cgroup.procs" in files:
            try:
                pids += [int(p) for p in open(os.path.join(root, "cgroup.procs")).read().split()]
            except OSError:
                pass
    return pids


def remove_tree(d):
    for root, dirs, _files in os.walk(d, topdown=False):
        for sub in dirs:
            try:
                os.rmdir(os.path.join(root, sub))
            except OSError:
                pass
    os.rmdir(d)


class Manager(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, OBJECT)
        self.units = {}  # name -> {"state", "cgroup", "props"}
        self.next_job = 1
        # Slice directories made by this fake (or an earlier one on the same
        # log: a restart), removed at exit.
        self.made_slices = []
        if os.path.exists(LOG + ".slices"):
            self.made_slices = json.load(open(LOG + ".slices"))
        self.dump()

    def save_slices(self):
        if LOG != "/dev/null":
            with open(LOG + ".slices", "w") as f:
                json.dump(self.made_slices, f)

    def dump(self):
        if LOG != "/dev/null":
            with open(LOG + ".units", "w") as f:
                json.dump(self.units, f)

    def new_job(self):
        n = self.next_job
        self.next_job += 1
        return n, dbus.ObjectPath(f"{OBJECT}/job/{n}")

    @dbus.service.signal(IFACE, signature="uoss")
    def JobRemoved(self, job_id, job, unit, result):
        log(signal="JobRemoved", job=str(job), unit=str(unit), result=str(result))

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Subscribe(self):
        log(method="Subscribe")

    @dbus.service.method(IFACE, in_signature="s", out_signature="o")
    def GetUnit(self, name):
        log(method="GetUnit", name=str(name))
        if name not in self.units:
            raise dbus.DBusException(f"Unit {name} not loaded.", name="org.freedesktop.systemd1.NoSuchUnit")
        return dbus.ObjectPath(OBJECT + "/unit/" + "".join(c if c.isalnum() else "_%02x" % ord(c) for c in name))

    @dbus.service.method(IFACE, in_signature="ssa(sv)a(sa(sv))", out_signature="o")
    def StartTransientUnit(self, name, mode, props, aux):
        props = {str(k): plain(v) for k, v in props}
        log(method="StartTransientUnit", name=str(name), mode=str(mode), props=props, aux=plain(aux))
        if name in self.units:
            raise dbus.DBusException(f"Unit {name} already exists.", name="org.freedesktop.systemd1.UnitExists")
        if not name.endswith(".scope"):
            raise dbus.DBusException("Unit type not supported by the fake.", name="org.freedesktop.DBus.Error.InvalidArgs")
        job_id, job = self.new_job()
        self.units[str(name)] = {"state": "activating", "cgroup": None, "props": props}
        GLib.idle_add(self.run_start, str(name), props, job_id, job)
        return job

    def run_start(self, name, props, job_id, job):
        unit = self.units[name]
        result = "done"
        try:
            if name.startswith("fakefail-"):
                raise OSError("configured to fail")
            rel = ""
            if MANAGER_ROOT:
                self.delegate(MANAGER_DIR)
            for d in slice_dirs(props.get("Slice", "system.slice")):
                if rel:
                    self.delegate(os.path.join(MANAGER_DIR, rel))
                rel = d
                path = os.path.join(MANAGER_DIR, rel)
                if not os.path.isdir(path):
                    os.mkdir(path)
                    self.made_slices.append(path)
                    self.save_slices()
            parent = os.path.join(MANAGER_DIR, rel) if rel else MANAGER_DIR
            if rel:
                self.delegate(parent)
            scope = os.path.join(parent, name)
            os.mkdir(scope)
            unit["cgroup"] = scope
            for pid in props.get("PIDs", []):
                with open(os.path.join(scope, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            unit["state"] = "active"
        except OSError as e:
            log(error=f"start {name}: {e}")
            result = "failed"
            unit["state"] = "failed"
            if unit["cgroup"]:
                try:
                    remove_tree(unit["cgroup"])
                except OSError:
                    pass
                unit["cgroup"] = None
        self.dump()
        if not name.startswith("fakehang-"):
            self.JobRemoved(dbus.UInt32(job_id), job, name, result)
        return False

    def delegate(self, d):
        """Enable what slice d is offered in its subtree_control (Delegate=yes
        and the *Accounting properties give the scope its controllers). The
        cgroup2 root's is left alone: it is the host's configuration (on a
        test host as well), and husk enables there what a limit needs. A
        user manager's own cgroup is its to configure."""
        try:
            offered = open(os.path.join(d, "cgroup.controllers")).read().split()
        except OSError:
            return
        for c in offered:
            write(os.path.join(d, "cgroup.subtree_control"), "+" + c)

    @dbus.service.method(IFACE, in_signature="ss", out_signature="o")
    def StopUnit(self, name, mode):
        log(method="StopUnit", name=str(name), mode=str(mode))
        if name not in self.units:
            raise dbus.DBusException(f"Unit {name} not loaded.", name="org.freedesktop.systemd1.NoSuchUnit")
        job_id, job = self.new_job()
        GLib.idle_add(self.run_stop, str(name), job_id, job)
        return job

    def run_stop(self, name, job_id, job):
        unit = self.units.get(name)
        result = "done"
        if unit and unit["cgroup"]:
            scope = unit["cgroup"]
            if not write(os.path.join(scope, "cgroup.kill"), "1"):
                for pid in procs_of(scope):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + 5
            while procs_of(scope) and time.time() < deadline:
                time.sleep(0.01)
            try:
                remove_tree(scope)
            except FileNotFoundError:
                pass
            except OSError as e:
                log(error=f"stop {name}: {e}")
                result = "failed"
        if result == "done":
            self.units.pop(name, None)  # CollectMode=inactive-or-failed
        else:
            unit["state"] = "failed"
        self.dump()
        self.JobRemoved(dbus.UInt32(job_id), job, name, result)
        return False

    @dbus.service.method(IFACE, in_signature="sba(sv)", out_signature="")
    def SetUnitProperties(self, name, runtime, props):
        props = {str(k): plain(v) for k, v in props}
        log(method="SetUnitProperties", name=str(name), runtime=bool(runtime), props=props)
        if name not in self.units:
            raise dbus.DBusException(f"Unit {name} not loaded.", name="org.freedesktop.systemd1.NoSuchUnit")
        self.units[name]["props"].update(props)  # the fake keeps them; the files are husk's to write
        self.dump()

    @dbus.service.method(IFACE, in_signature="s", out_signature="")
    def ResetFailedUnit(self, name):
        log(method="ResetFailedUnit", name=str(name))
        if name not in self.units:
            raise dbus.DBusException(f"Unit {name} not loaded.", name="org.freedesktop.systemd1.NoSuchUnit")
        if self.units[name]["state"] == "failed":
            del self.units[name]
            self.dump()

    def cleanup(self):
        left = []
        for d in reversed(self.made_slices):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                left.insert(0, d)  # still in use: the next instance tries again
        self.made_slices = left
        self.save_slices()


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    manager = Manager(bus)
    _name = dbus.service.BusName("org.freedesktop.systemd1", bus, do_not_queue=True)  # noqa: F841
    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop)
    print("READY", flush=True)
    loop.run()
    manager.cleanup()


if __name__ == "__main__":
    main()
