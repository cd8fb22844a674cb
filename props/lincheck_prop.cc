#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
