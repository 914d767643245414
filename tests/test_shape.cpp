// Shapes, axes and NumPy broadcasting.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

TEST_CASE("broadcast of valid pairs") {
  CHECK(tg::broadcast_shapes("add", {2, 3}, {2, 3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {2, 3}, {3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {2, 1}, {1, 3}) == tg::Shape{2, 3});
  CHECK(tg::broadcast_shapes("add", {}, {4, 5}) == tg::Shape{4, 5});
  CHECK(tg::broadcast_shapes("add", {5, 1, 4}, {3, 1}) == tg::Shape{5, 3, 4});
  CHECK(tg::broadcast_shapes("add", {0, 3}, {1, 3}) == tg::Shape{0, 3});
}

TEST_CASE("broadcast of invalid pairs names op and shapes") {
  CHECK_THROWS_AS(tg::broadcast_shapes("add", {2, 3}, {4, 3}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::broadcast_shapes("add", {2, 3}, {2}),
                    doctest::Contains("add: shapes must broadcast"));
  CHECK_THROWS_WITH(tg::broadcast_shapes("mul", {2, 3}, {2}), doctest::Contains("[2, 3] and [2]"));
  CHECK_THROWS_AS(tg::broadcast_shapes("add", {0, 3}, {2, 3}), tg::ShapeError);
}

TEST_CASE("normalize_axis counts negative axes from the end") {
  CHECK(tg::normalize_axis("sum", -1, 2) == 1);
  CHECK(tg::normalize_axis("sum", 0, 2) == 0);
  CHECK_THROWS_AS(tg::normalize_axis("sum", 2, 2), tg::ShapeError);
  CHECK_THROWS_WITH(tg::normalize_axis("sum", -3, 2), doctest::Contains("axis -3"));
}

TEST_CASE("shape rank limit") {
  tg::Shape shape{1, 1, 1, 1, 1, 1, 1, 1};
  CHECK(shape.rank() == 8);
  CHECK_THROWS_AS(shape.push_back(1), tg::ShapeError);
  CHECK(tg::to_string(tg::Shape{}) == "[]");
  CHECK(tg::to_string(tg::Shape{4, 3}) == "[4, 3]");
}
