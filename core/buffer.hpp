#pragma once
// Reference-counted, 64-byte-aligned element storage, the pool that recycles it, and the
// counters that report how much of it is in use.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tapegrad {

class BufferPool;

// One aligned allocation: the header below followed by `capacity` bytes of data at a 64-byte
// boundary. Tensors hold buffers through BufferRef; the last reference returns the buffer to its
// pool, or to the system when it has none.
struct Buffer {
  std::atomic<std::int64_t> references{1};
  std::size_t capacity = 0;
  std::shared_ptr<BufferPool> pool;

  void* data();
};

// Intrusive owning pointer to a Buffer. Copying it costs one atomic increment and no allocation.
class BufferRef {
 public:
  BufferRef() = default;
  explicit BufferRef(Buffer* buffer) : buffer_(buffer) {}
  BufferRef(const BufferRef& other);
  BufferRef(BufferRef&& other) noexcept;
  BufferRef& operator=(BufferRef other) noexcept;
  ~BufferRef();

  Buffer* get() const { return buffer_; }
  void* data() const { return buffer_ != nullptr ? buffer_->data() : nullptr; }
  std::int64_t use_count() const;
  explicit operator bool() const { return buffer_ != nullptr; }

 private:
  Buffer* buffer_ = nullptr;
};

// Allocates a buffer of at least `bytes` bytes from the system, outside any pool.
BufferRef allocate_buffer(std::size_t bytes);

// A free list of released buffers, keyed by exact capacity. A tape owns one: the tensors of a
// training step are released when the step's tape is cleared, and the next step, which asks for
// the same sizes, takes them back instead of calling the allocator.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  BufferRef allocate(std::size_t bytes);
  void release(Buffer* buffer);

  // Bytes held in free lists, ready for reuse.
  std::size_t cached_bytes() const;
  // Returns every cached buffer to the system.
  void trim();

 private:
  struct FreeList {
    std::size_t capacity;
    std::vector<Buffer*> buffers;
  };
  mutable std::mutex mutex_;
  std::vector<FreeList> free_lists_;
};

// Process-wide counters of tensor storage, for benchmarks and leak checks. Every buffer any
// tensor uses is counted here, pooled or not.
struct MemoryStats {
  std::int64_t live_bytes = 0;         // bytes in buffers allocated from the system and not yet freed
  std::int64_t peak_bytes = 0;         // maximum of live_bytes since the last reset_peak_memory()
  std::int64_t system_allocations = 0; // buffers allocated from the system since the process started
};
MemoryStats memory_stats();
void reset_peak_memory();

}  // namespace tapegrad
