package indexer

// backCache is an optional write-through copy of one slice's back index
// (docid → encoded key), so the flusher's upserts and deletions need not
// read the store. It is complete when the slice started empty in this
// process and the cache never outgrew its bound: then a miss means the
// document is not indexed and no read is needed at all. When it outgrows
// the bound it empties and stays incomplete: it then fills from the reads
// and writes of later flushes (a simple bound, not an LRU). Only the
// slice's flusher uses it, under the flush lock.
type backCache struct {
	limit    int64
	bytes    int64
	m        map[string][]byte
	complete bool
}

// backCacheEntryOverhead approximates a map entry's own memory.
const backCacheEntryOverhead = 64

func newBackCache(limit int64, complete bool) *backCache {
	if limit <= 0 {
		return nil
	}
	return &backCache{limit: limit, m: make(map[string][]byte), complete: complete}
}

// get returns the cached key of docid. known is false when the cache cannot
// tell (the caller reads the store); a known nil key means not indexed.
func (c *backCache) get(docid []byte) (key []byte, known bool) {
	if c == nil {
		return nil, false
	}
	if k, ok := c.m[string(docid)]; ok {
		return k, true
	}
	return nil, c.complete
}

// put records docid's key (nil: not indexed).
func (c *backCache) put(docid, key []byte) {
	if c == nil {
		return
	}
	if old, ok := c.m[string(docid)]; ok {
		c.bytes -= int64(len(docid) + len(old) + backCacheEntryOverhead)
		delete(c.m, string(docid))
	}
	if key == nil {
		return
	}
	c.bytes += int64(len(docid) + len(key) + backCacheEntryOverhead)
	if c.bytes > c.limit {
		c.reset(false)
		return
	}
	c.m[string(docid)] = append([]byte(nil), key...)
}

// reset empties the cache; complete says whether the slice is empty too.
func (c *backCache) reset(complete bool) {
	if c == nil {
		return
	}
	clear(c.m)
	c.bytes = 0
	c.complete = complete
}
