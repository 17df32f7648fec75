// Command-line helpers shared by the two samples.
#pragma once

#include "leed_host.hpp"

#include <sstream>
#include <string>

namespace leed {

// `text` as a T (int, float), or leed::Error naming the argument.
template <class T>
T parse_arg(const std::string& text, const char* what) {
    std::istringstream in(text);
    T value{};
    if (!(in >> value) || !in.eof()) throw Error(std::string(what) + " '" + text + "' is not a number");
    return value;
}

}  // namespace leed
