// A small mutation driver for LLVMFuzzerTestOneInput: runs every file of the
// corpus directory, then mutates them (bit flips, byte replacement with JSON
// punctuation, splices, truncation, duplication) until the time is up.
// usage: TARGET CORPUS_DIR SECONDS [SEED] (config_fuzz, msgpack_fuzz)
#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CORPUS_DIR SECONDS [SEED]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> corpus;
  DIR* d = opendir(argv[1]);
  if (!d) return 2;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string(argv[1]) + "/" + e->d_name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    corpus.push_back(ss.str());
  }
  closedir(d);
  if (corpus.empty()) return 2;
  for (const auto& c : corpus) LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(c.data()), c.size());
  std::mt19937_64 rng(argc > 3 ? std::stoull(argv[3]) : 12345);
  const char* tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "-1", "18446744073709551616", "null", "true",
                          "1e99", "\"\\u0000\"", "0.5", "\"CAP_SYS_ADMIN\""};
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(argv[2]));
  uint64_t runs = 0;
  while (std::chrono::steady_clock::now() < end) {
    std::string s = corpus[rng() % corpus.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < edits && !s.empty(); ++i) {
      size_t pos = rng() % s.size();
      switch (rng() % 6) {
        case 0: s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8))); break;
        case 1: s.insert(pos, tokens[rng() % (sizeof tokens / sizeof *tokens)]); break;
        case 2: s.erase(pos, 1 + rng() % 16); break;
        case 3: s.resize(pos); break;
        case 4: {
          const std::string& other = corpus[rng() % corpus.size()];
          size_t from = rng() % other.size();
          s.insert(pos, other.substr(from, 1 + rng() % 64));
          break;
        }
        case 5: s.insert(pos, s.substr(pos, rng() % 32)); break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  }
  const char* name = strrchr(argv[0], '/');
  printf("%s: %zu seeds, %llu mutated inputs, no crash\n", name ? name + 1 : argv[0], corpus.size(),
         static_cast<unsigned long long>(runs));
  return 0;
}
