#pragma once
// The error types of tapegrad and the one helper family that raises them.
//
// Every message has one format:
//
//     <op>: <rule that was broken>, but got <the arguments with their values or shapes>
//
// for example
//
//     matmul: the inner dimensions must match (a.shape[1] == b.shape[0]), but got a [4, 3] and b [5, 2]
//
// so a reader sees which call failed, what would have been valid and what was passed.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace tapegrad {

// Base of every exception tapegrad raises. op() is the name of the operation or function that raised.
class Error : public std::runtime_error {
 public:
  Error(std::string op, const std::string& message) : std::runtime_error(message), op_(std::move(op)) {}
  const std::string& op() const noexcept { return op_; }

 private:
  std::string op_;
};

// Shapes that do not fit together or do not fit the operation: rank, broadcasting, axis, index.
class ShapeError : public Error {
  using Error::Error;
};

// An element type the operation does not accept, or two inputs of different types.
class DtypeError : public Error {
  using Error::Error;
};

// An argument outside its domain: a temperature that is not positive, an empty row of a masked mean.
class ValueError : public Error {
  using Error::Error;
};

// Misuse of a Tape or Var: a stale handle, Vars of two tapes in one op, a missing seed.
class TapeError : public Error {
  using Error::Error;
};

// Raises ErrorType with the message "<op>: <rule>, but got <formatted details>".
template <class ErrorType, class... Args>
[[noreturn]] void raise(std::string_view op, std::string_view rule, fmt::format_string<Args...> details,
                        Args&&... args) {
  static_assert(std::is_base_of_v<Error, ErrorType>);
  std::string message = fmt::format("{}: {}, but got ", op, rule);
  fmt::format_to(std::back_inserter(message), details, std::forward<Args>(args)...);
  throw ErrorType(std::string(op), message);
}

}  // namespace tapegrad
