// husk-log's drivers by name: options checked, destination opened.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::logs {

Result<std::unique_ptr<runtime::LogSink>> open_sink(const std::string& driver, const std::vector<std::string>& opts,
                                                    const std::string& container_id);

}  // namespace husk::logs
