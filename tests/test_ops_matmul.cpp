// PLACEHOLDER: replaced by this suite's tests.
#include <doctest/doctest.h>

TEST_CASE("placeholder") { CHECK(true); }
