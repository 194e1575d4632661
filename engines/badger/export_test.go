package badger

import badgerdb "github.com/dgraph-io/badger/v4"

// DB exposes the live database to the raw-engine benchmark.
func DB(s *Store) *badgerdb.DB { return s.db }
