// The driver's task handles (what Nomad keeps for RecoverTask) and its husk
// process helpers.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "driver/husk_process.h"
#include "driver/tasks.h"

using namespace husk::driver;

TEST(TaskHandle, RoundTripsThroughDriverState) {
  TaskHandleState h;
  h.task_id = "6c929dbc-1d8c/short/080917dc";
  h.task_name = "short";
  h.alloc_id = "6c929dbc-1d8c";
  h.container_id = "6c929dbc-1d8c-short-080917dc";
  h.task_dir = "/var/lib/husk-driver/tasks/6c929dbc-1d8c-short-080917dc";
  h.monitor_pid = 4242;
  h.monitor_start = 123456789;
  h.started_at_ns = 1700000000123456789;
  h.overlay = true;
  auto back = decode_handle_state(encode_handle_state(h));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->task_id, h.task_id);
  EXPECT_EQ(back->container_id, h.container_id);
  EXPECT_EQ(back->task_dir, h.task_dir);
  EXPECT_EQ(back->monitor_pid, 4242);
  EXPECT_EQ(back->monitor_start, 123456789u);
  EXPECT_EQ(back->started_at_ns, 1700000000123456789);
  EXPECT_TRUE(back->overlay);
}

TEST(TaskHandle, ForeignDriverStateIsRefused) {
  auto r = decode_handle_state(std::string("\x81\xa4" "name" "\xa3" "abc", 10));  // some msgpack
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("not a husk task handle"), std::string::npos);
  EXPECT_FALSE(decode_handle_state("version=1\n"));  // no container id
}

TEST(HuskProcess, CapturesOutputExitCodeAndTimeout) {
  auto c = run_captured({"/bin/sh", "-c", "read x; echo out:$x; echo err >&2; exit 7"}, "ping\n", 10000);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->out, "out:ping\n");
  EXPECT_EQ(c->err, "err\n");
  EXPECT_EQ(exit_code_of(c->status), 7);
  auto slow = run_captured({"/bin/sleep", "10"}, "", 100);
  ASSERT_TRUE(slow);
  EXPECT_TRUE(slow->timed_out);
  EXPECT_EQ(exit_code_of(slow->status), 128 + 9);
  auto missing = run_captured({"/nonexistent/binary"}, "", 1000);
  EXPECT_FALSE(missing);  // posix_spawn reports the exec failure
}

TEST(TaskManager, CgroupsUnderNomadSliceForEitherManager) {
  TaskManager fs("/nonexistent/state");
  // Not root: husk's default in the delegated subtree (cgroups/rootless.h).
  EXPECT_EQ(fs.cgroups_path_for("a1-web-0c"), geteuid() == 0 ? "/nomad.slice/husk-a1-web-0c.scope" : "");
  EXPECT_EQ(fs.husk_options().cgroup_manager, husk::cgroups::ManagerKind::Fs);
  TaskManager sd("/nonexistent/state");
  sd.set_cgroup_manager(husk::cgroups::ManagerKind::Systemd);
  // slice:prefix:name -> husk-a1-web-0c.scope in nomad.slice
  EXPECT_EQ(sd.cgroups_path_for("a1-web-0c"), "nomad.slice:husk:a1-web-0c");
  EXPECT_EQ(sd.husk_options().cgroup_manager, husk::cgroups::ManagerKind::Systemd);
}
