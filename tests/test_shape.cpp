// Shapes, axes and NumPy broadcasting.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

// The message of the ShapeError that broadcast_shapes raises for a and b, or "" when it raises none.
std::string broadcast_error(const tg::Shape& a, const tg::Shape& b) {
  try {
    tg::broadcast_shapes("add", a, b);
  } catch (const tg::ShapeError& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("broadcast of valid pairs") {
  CHECK(tg::broadcast_shapes("add", {2, 3}, {2, 3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {2, 3}, {3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {2, 1}, {1, 3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {}, {4, 5}) == tg::Shape{4, 5});
  CHECK(tg::broadcast_shapes("add", {5, 1, 4}, {3, 1}) == tg::Shape{5, 3, 4});
  CHECK(tg::broadcast_shapes("add", {0, 3}, {1, 3}) == tg::Shape{0, 3});
}

TEST_CASE("broadcast of valid pairs is symmetric") {
  // Each row: a, b and the NumPy result, worked out by hand from the right-aligned rule.
  struct Row {
    tg::Shape a;
    tg::Shape b;
    tg::Shape expected;
  };
  const std::vector<Row> rows = {
      {{}, {}, {}},
      {{}, {1}, {1}},
      {{7}, {1}, {7}},
      {{1, 1}, {1}, {1, 1}},
      {{4, 1, 6}, {5, 1}, {4, 5, 6}},
      {{8, 1, 6, 1}, {7, 1, 5}, {8, 7, 6, 5}},
      {{2, 0}, {1}, {2, 0}},
      {{0}, {0}, {0}},
      {{1, 0}, {3, 1}, {3, 0}},
  };
  for (const Row& row : rows) {
    CAPTURE(tg::to_string(row.a));
    CAPTURE(tg::to_string(row.b));
    CHECK(tg::broadcast_shapes("add", row.a, row.b) == row.expected);
    CHECK(tg::broadcast_shapes("add", row.b, row.a) == row.expected);
  }
}

TEST_CASE("broadcast of invalid pairs names op and shapes") {
  CHECK_THROWS_AS(tg::broadcast_shapes("add", {2, 3}, {4, 3}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::broadcast_shapes("add", {2, 3}, {2}),
                    doctest::Contains("add: shapes must broadcast"));
  CHECK_THROWS_WITH(tg::broadcast_shapes("mul", {2, 3}, {2}), doctest::Contains("[2, 3] and [2]"));
  CHECK_THROWS_AS(tg::broadcast_shapes("add", {0, 3}, {2, 3}), tg::ShapeError);
}

TEST_CASE("broadcast rejects every kind of invalid pair") {
  // Each kind of mismatch, in both argument orders: the message names the two shapes as given.
  struct Row {
    const char* kind;
    tg::Shape a;
    tg::Shape b;
    const char* shapes_in_message;
  };
  const std::vector<Row> rows = {
      {"same rank, last axis", {2, 3}, {2, 4}, "[2, 3] and [2, 4]"},
      {"same rank, first axis", {2, 3}, {4, 3}, "[2, 3] and [4, 3]"},
      {"lower rank, aligned from the right", {2, 3}, {2}, "[2, 3] and [2]"},
      {"lower rank, inner axis", {5, 2, 3}, {4, 3}, "[5, 2, 3] and [4, 3]"},
      {"mismatch beside a broadcast axis", {2, 1, 3}, {2, 4, 4}, "[2, 1, 3] and [2, 4, 4]"},
      {"zero against an extent other than 1", {0, 3}, {2, 3}, "[0, 3] and [2, 3]"},
      {"zero against zero-free rank 1", {0}, {3}, "[0] and [3]"},
      {"rank 1 against rank 1", {3}, {4}, "[3] and [4]"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.kind);
    const std::string forward = broadcast_error(row.a, row.b);
    CHECK(forward.find("add: shapes must broadcast") != std::string::npos);
    CHECK(forward.find(row.shapes_in_message) != std::string::npos);
    const std::string backward = broadcast_error(row.b, row.a);
    CHECK(backward.find("add: shapes must broadcast") != std::string::npos);
    CHECK(backward.find(tg::to_string(row.b) + " and " + tg::to_string(row.a)) != std::string::npos);
  }
}

TEST_CASE("broadcasts_to accepts only the target shape") {
  CHECK(tg::broadcasts_to({3}, {2, 3}));
  CHECK(tg::broadcasts_to({1, 3}, {2, 3}));
  CHECK(tg::broadcasts_to({}, {2, 3}));
  CHECK(tg::broadcasts_to({2, 3}, {2, 3}));
  CHECK(tg::broadcasts_to({2, 1}, {2, 3}));
  CHECK_FALSE(tg::broadcasts_to({2}, {2, 3}));
  CHECK_FALSE(tg::broadcasts_to({2, 3}, {3}));
  CHECK_FALSE(tg::broadcasts_to({1, 2, 3}, {2, 3}));
  CHECK_FALSE(tg::broadcasts_to({2, 3}, {2, 1}));
}

TEST_CASE("normalize_axis counts negative axes from the end") {
  CHECK(tg::normalize_axis("sum", -1, 2) == 1);
  CHECK(tg::normalize_axis("sum", 0, 2) == 0);
  CHECK_THROWS_AS(tg::normalize_axis("sum", 2, 2), tg::ShapeError);
  CHECK_THROWS_WITH(tg::normalize_axis("sum", -3, 2), doctest::Contains("axis -3"));
}

TEST_CASE("normalize_axis message names the valid range") {
  CHECK_THROWS_WITH(tg::normalize_axis("max", 3, 3),
                    "max: axis must be in [-3, 3) for a tensor of rank 3, but got axis 3");
  CHECK_THROWS_AS(tg::normalize_axis("max", 0, 0), tg::ShapeError);
  CHECK_THROWS_WITH(tg::normalize_axis("max", 0, 0), doctest::Contains("[0, 0) for a tensor of rank 0"));
}

TEST_CASE("shape rank limit") {
  tg::Shape shape{1, 1, 1, 1, 1, 1, 1, 1};
  CHECK(shape.rank() == 8);
  CHECK_THROWS_AS(shape.push_back(1), tg::ShapeError);
  CHECK(tg::to_string(tg::Shape{}) == "[]");
  CHECK(tg::to_string(tg::Shape{4, 3}) == "[4, 3]");
}

TEST_CASE("shape with nine axes raises") {
  const std::vector<std::int64_t> extents(9, 1);
  CHECK_THROWS_AS(tg::Shape(std::span<const std::int64_t>(extents)), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Shape(std::span<const std::int64_t>(extents)),
                    "Shape: a shape has at most 8 axes, but got 9 axes");
}

TEST_CASE("numel and strides") {
  CHECK(tg::Shape{}.numel() == 1);
  CHECK(tg::Shape{0, 5}.numel() == 0);
  CHECK(tg::Shape{2, 3, 4}.numel() == 24);
  // Valid, because a zero extent makes the tensor empty, but 2^32 · 2^32 overflows int64 on the
  // way to 0 when multiplied left to right (undefined behavior, caught by UBSan).
  const std::int64_t two_to_32 = std::int64_t{1} << 32;
  CHECK_NOTHROW(tg::check_extents("zeros", {two_to_32, two_to_32, 0}));
  CHECK(tg::Shape{two_to_32, two_to_32, 0}.numel() == 0);
  CHECK(tg::Tensor::zeros({two_to_32, two_to_32, 0}).numel() == 0);
  CHECK(tg::Tensor::zeros({0, two_to_32, two_to_32}).numel() == 0);
  CHECK(tg::contiguous_strides({0, two_to_32, two_to_32})[1] == two_to_32);
  const auto strides = tg::contiguous_strides({2, 3, 4});
  CHECK(strides[0] == 12);
  CHECK(strides[1] == 4);
  CHECK(strides[2] == 1);
}

TEST_CASE("check_extents rejects negative extents") {
  CHECK_NOTHROW(tg::check_extents("zeros", {0, 3}));
  CHECK_THROWS_AS(tg::check_extents("zeros", {2, -1}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::check_extents("zeros", {2, -1}), doctest::Contains("zeros: every extent"));
  CHECK_THROWS_WITH(tg::check_extents("zeros", {2, -1}), doctest::Contains("shape [2, -1]"));
}

TEST_CASE("check_extents rejects an element count past int64") {
  // 2^32 · 2^32 = 2^64 elements does not fit in std::int64_t, so numel() would overflow.
  const std::int64_t two_to_32 = std::int64_t{1} << 32;
  CHECK_THROWS_AS(tg::check_extents("zeros", {two_to_32, two_to_32}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::check_extents("zeros", {two_to_32, two_to_32}),
                    doctest::Contains("shape [4294967296, 4294967296]"));
  // A zero extent makes the count 0 whatever the other extents are.
  CHECK_NOTHROW(tg::check_extents("zeros", {two_to_32, two_to_32, 0}));
}
