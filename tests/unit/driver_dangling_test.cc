// The docker flavor's dangling-container reaper (TaskManager::reap_dangling)
// on a state root of stopped containers: which ones it takes (the label,
// no owning task, older than the grace), that dry_run leaves them, and that
// it removes both the container and its task directory.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "driver/tasks.h"
#include "oci/config.h"
#include "runtime/state_store.h"

using namespace husk;
using namespace husk::driver;
namespace fs = std::filesystem;

namespace {

const char* kLabel = "com.hashicorp.nomad.alloc_id";
constexpr int64_t kMinute = 60'000'000'000;

int64_t now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

class Reaper : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-dangling-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    state_ = tmpl;
    fs::create_directories(state_ + "/containers");
    fs::create_directories(state_ + "/tasks");
  }
  void TearDown() override { fs::remove_all(state_); }

  // A stopped container as husk leaves one after its task died, with the
  // task directory the driver made for it.
  void container(const std::string& id, int64_t age_ns, bool labelled) {
    auto store = runtime::StateStore::open(state_ + "/containers");
    ASSERT_TRUE(store) << store.error().str();
    auto dir = store->create(id);
    ASSERT_TRUE(dir) << dir.error().str();
    std::string bundle = state_ + "/tasks/" + id;
    fs::create_directories(bundle + "/rootfs");
    runtime::ContainerRecord rec;
    rec.id = id;
    rec.bundle = bundle;
    rec.rootfs = bundle + "/rootfs";
    rec.cgroup_manager = "disabled";
    rec.created = now() - age_ns;
    ASSERT_TRUE(dir->save(rec));
    oci::Spec spec = oci::default_spec(false);
    spec.root = oci::Root{bundle + "/rootfs", false};
    if (labelled) spec.annotations[kLabel] = "0123";
    std::ofstream(dir->config_path()) << oci::emit_config(spec);
  }
  bool exists(const std::string& id) {
    return fs::exists(state_ + "/containers/" + id) || fs::exists(state_ + "/tasks/" + id);
  }

  std::string state_;
};

TEST_F(Reaper, RemovesOldLabelledContainersNoTaskOwns) {
  container("old-labelled", 10 * kMinute, true);
  container("young-labelled", 0, true);
  container("old-foreign", 10 * kMinute, false);  // not made by the docker flavor
  TaskManager tm(state_);

  auto dry = tm.reap_dangling(kLabel, 5 * kMinute, true, now());
  ASSERT_TRUE(dry) << dry.error().str();
  EXPECT_EQ(*dry, std::vector<std::string>{"old-labelled"});
  EXPECT_TRUE(exists("old-labelled"));

  auto r = tm.reap_dangling(kLabel, 5 * kMinute, false, now());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, std::vector<std::string>{"old-labelled"});
  EXPECT_FALSE(exists("old-labelled"));
  EXPECT_TRUE(exists("young-labelled"));
  EXPECT_TRUE(exists("old-foreign"));
}

// gc.container = false: a container DestroyTask kept is the operator's.
TEST_F(Reaper, LeavesAContainerKeptByGcContainerFalse) {
  container("kept", 10 * kMinute, true);
  std::ofstream(state_ + "/tasks/kept/" + kKeptFile) << "kept\n";
  container("lost", 10 * kMinute, true);
  TaskManager tm(state_);
  auto r = tm.reap_dangling(kLabel, 5 * kMinute, false, now());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, std::vector<std::string>{"lost"});
  EXPECT_TRUE(exists("kept"));
  EXPECT_FALSE(exists("lost"));
}

TEST_F(Reaper, NoStateRootIsNothingToDo) {
  fs::remove_all(state_ + "/containers");
  TaskManager tm(state_);
  auto r = tm.reap_dangling(kLabel, kMinute, false, now());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->empty());
}

}  // namespace
