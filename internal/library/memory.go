package library

import (
	"container/list"
	"sync"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

// entry is one source's transcoded μ-law. data is never modified once the
// entry exists, so any number of Streams may read it at once.
type entry struct {
	key  string
	data []byte
	info audio.Info // of the source; Duration is the exact length of data
}

func newEntry(key string, data []byte, info audio.Info) *entry {
	info.Duration = time.Duration(len(data)) * time.Second / audio.SampleRate
	return &entry{key: key, data: data, info: info}
}

// memCache is a least-recently-used cache of entries bounded by the bytes
// of μ-law it holds.
type memCache struct {
	max int64

	mu        sync.Mutex
	size      int64
	lru       list.List // of *entry, most recently used first
	byKey     map[string]*list.Element
	evictions int64
}

func newMemCache(max int64) *memCache {
	return &memCache{max: max, byKey: make(map[string]*list.Element)}
}

// get returns the entry for key, or nil, and marks it used.
func (c *memCache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*entry)
}

// put adds e, evicting the least recently used entries to make room. An
// entry larger than the whole cache is not kept.
func (c *memCache) put(e *entry) {
	n := int64(len(e.data))
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[e.key]; ok {
		c.lru.MoveToFront(el)
		return // same key, same content
	}
	for c.size+n > c.max {
		last := c.lru.Back()
		old := c.lru.Remove(last).(*entry)
		delete(c.byKey, old.key)
		c.size -= int64(len(old.data))
		c.evictions++
	}
	c.byKey[e.key] = c.lru.PushFront(e)
	c.size += n
}

func (c *memCache) stats() (bytes int64, entries int, evictions int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.byKey), c.evictions
}

// remove drops the entry for key, if any.
func (c *memCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		old := c.lru.Remove(el).(*entry)
		delete(c.byKey, key)
		c.size -= int64(len(old.data))
	}
}
