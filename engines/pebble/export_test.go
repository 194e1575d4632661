package pebble

import pebbledb "github.com/cockroachdb/pebble/v2"

// DB exposes the live database to the raw-engine benchmark.
func DB(s *Store) *pebbledb.DB { return s.db }
