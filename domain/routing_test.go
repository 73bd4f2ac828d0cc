package domain_test

import (
	"math"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// guavaVectors were produced by running Java's String.hashCode and Guava
// 33.5.0's Hashing.consistentHash on these inputs (see docs/compatibility.md).
var guavaVectors = []struct {
	group   string
	hash    int32
	buckets int
	want    int
}{
	{"", 0, 1, 0},
	{"", 0, 2, 0},
	{"", 0, 3, 0},
	{"", 0, 8, 0},
	{"", 0, 16, 0},
	{"", 0, 100, 0},
	{"", 0, 1024, 0},
	{"a", 97, 1, 0},
	{"a", 97, 2, 0},
	{"a", 97, 3, 0},
	{"a", 97, 8, 0},
	{"a", 97, 16, 0},
	{"a", 97, 100, 29},
	{"a", 97, 1024, 346},
	{"order-1", -1207111310, 1, 0},
	{"order-1", -1207111310, 2, 0},
	{"order-1", -1207111310, 3, 0},
	{"order-1", -1207111310, 8, 3},
	{"order-1", -1207111310, 16, 3},
	{"order-1", -1207111310, 100, 3},
	{"order-1", -1207111310, 1024, 489},
	{"order-42", 1234255197, 1, 0},
	{"order-42", 1234255197, 2, 0},
	{"order-42", 1234255197, 3, 2},
	{"order-42", 1234255197, 8, 3},
	{"order-42", 1234255197, 16, 10},
	{"order-42", 1234255197, 100, 25},
	{"order-42", 1234255197, 1024, 753},
	{"group-\U000000fc", 293427502, 1, 0},
	{"group-\U000000fc", 293427502, 2, 0},
	{"group-\U000000fc", 293427502, 3, 2},
	{"group-\U000000fc", 293427502, 8, 5},
	{"group-\U000000fc", 293427502, 16, 5},
	{"group-\U000000fc", 293427502, 100, 5},
	{"group-\U000000fc", 293427502, 1024, 137},
	{"\U0001f600emoji", -1233692477, 1, 0},
	{"\U0001f600emoji", -1233692477, 2, 1},
	{"\U0001f600emoji", -1233692477, 3, 2},
	{"\U0001f600emoji", -1233692477, 8, 6},
	{"\U0001f600emoji", -1233692477, 16, 6},
	{"\U0001f600emoji", -1233692477, 100, 6},
	{"\U0001f600emoji", -1233692477, 1024, 250},
	{"FIFO_GROUP_0001", 1036983092, 1, 0},
	{"FIFO_GROUP_0001", 1036983092, 2, 1},
	{"FIFO_GROUP_0001", 1036983092, 3, 1},
	{"FIFO_GROUP_0001", 1036983092, 8, 7},
	{"FIFO_GROUP_0001", 1036983092, 16, 12},
	{"FIFO_GROUP_0001", 1036983092, 100, 75},
	{"FIFO_GROUP_0001", 1036983092, 1024, 914},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 1, 0},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 2, 0},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 3, 0},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 8, 7},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 16, 7},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 100, 62},
	{"very-long-message-group-name-with-many-characters-000", -633127096, 1024, 625},
}

var guavaLongVectors = []struct {
	input   int64
	buckets int
	want    int
}{
	{0, 1, 0},
	{0, 2, 0},
	{0, 3, 0},
	{0, 8, 0},
	{0, 16, 0},
	{0, 100, 0},
	{0, 1024, 0},
	{1, 1, 0},
	{1, 2, 0},
	{1, 3, 0},
	{1, 8, 6},
	{1, 16, 6},
	{1, 100, 55},
	{1, 1024, 549},
	{-1, 1, 0},
	{-1, 2, 1},
	{-1, 3, 2},
	{-1, 8, 7},
	{-1, 16, 10},
	{-1, 100, 92},
	{-1, 1024, 313},
	{123456789, 1, 0},
	{123456789, 2, 0},
	{123456789, 3, 0},
	{123456789, 8, 7},
	{123456789, 16, 7},
	{123456789, 100, 34},
	{123456789, 1024, 294},
	{math.MinInt64, 1, 0},
	{math.MinInt64, 2, 1},
	{math.MinInt64, 3, 1},
	{math.MinInt64, 8, 5},
	{math.MinInt64, 16, 12},
	{math.MinInt64, 100, 84},
	{math.MinInt64, 1024, 453},
	{9223372036854775807, 1, 0},
	{9223372036854775807, 2, 0},
	{9223372036854775807, 3, 2},
	{9223372036854775807, 8, 7},
	{9223372036854775807, 16, 8},
	{9223372036854775807, 100, 97},
	{9223372036854775807, 1024, 972},
}

func TestFIFOQueueSelectionMatchesJava(t *testing.T) {
	for _, v := range guavaVectors {
		if got := domain.JavaStringHash(v.group); got != v.hash {
			t.Errorf("JavaStringHash(%q) = %d, Java says %d", v.group, got, v.hash)
		}
		if got := domain.FIFOQueueIndex(v.group, v.buckets); got != v.want {
			t.Errorf("FIFOQueueIndex(%q, %d) = %d, Guava says %d", v.group, v.buckets, got, v.want)
		}
	}
	for _, v := range guavaLongVectors {
		if got := domain.ConsistentHash(v.input, v.buckets); got != v.want {
			t.Errorf("ConsistentHash(%d, %d) = %d, Guava says %d", v.input, v.buckets, got, v.want)
		}
	}
}
