#include "buffer.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace tapegrad {
namespace {

constexpr std::size_t alignment = 64;
// The header is padded to the alignment so that the data that follows it is aligned too.
constexpr std::size_t header_bytes = (sizeof(Buffer) + alignment - 1) / alignment * alignment;

// Statistics only: they order nothing else, so relaxed operations suffice. Stronger ones would
// also make every allocation a synchronization point between threads, which would hide data
// races elsewhere from ThreadSanitizer.
std::atomic<std::int64_t> live_bytes{0};
std::atomic<std::int64_t> peak_bytes{0};
std::atomic<std::int64_t> system_allocations{0};
constexpr auto statistics_order = std::memory_order_relaxed;

void count_allocation(std::size_t bytes) {
  const auto added = static_cast<std::int64_t>(bytes);
  const std::int64_t live = live_bytes.fetch_add(added, statistics_order) + added;
  std::int64_t peak = peak_bytes.load(statistics_order);
  while (live > peak && !peak_bytes.compare_exchange_weak(peak, live, statistics_order)) {
  }
  system_allocations.fetch_add(1, statistics_order);
}

Buffer* allocate_from_system(std::size_t bytes) {
  // Zero-byte tensors still get a distinct buffer, so that data() is never null.
  const std::size_t capacity = std::max<std::size_t>(bytes, 1);
  const std::size_t total = (header_bytes + capacity + alignment - 1) / alignment * alignment;
  void* memory = std::aligned_alloc(alignment, total);
  if (memory == nullptr) {
    throw std::bad_alloc();
  }
  auto* buffer = new (memory) Buffer();
  buffer->capacity = capacity;
  count_allocation(total);
  return buffer;
}

void free_to_system(Buffer* buffer) {
  const std::size_t total = (header_bytes + buffer->capacity + alignment - 1) / alignment * alignment;
  buffer->~Buffer();
  std::free(buffer);
  live_bytes.fetch_sub(static_cast<std::int64_t>(total), statistics_order);
}

}  // namespace

void* Buffer::data() { return reinterpret_cast<std::byte*>(this) + header_bytes; }

BufferRef::BufferRef(const BufferRef& other) : buffer_(other.buffer_) {
  if (buffer_ != nullptr) {
    buffer_->references.fetch_add(1, std::memory_order_relaxed);
  }
}

BufferRef::BufferRef(BufferRef&& other) noexcept : buffer_(other.buffer_) { other.buffer_ = nullptr; }

BufferRef& BufferRef::operator=(BufferRef other) noexcept {
  std::swap(buffer_, other.buffer_);
  return *this;
}

BufferRef::~BufferRef() {
  if (buffer_ == nullptr || buffer_->references.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return;
  }
  if (buffer_->pool) {
    // release() takes the pool reference out of the buffer, which may destroy the pool.
    BufferPool& pool = *buffer_->pool;
    pool.release(buffer_);
  } else {
    free_to_system(buffer_);
  }
}

std::int64_t BufferRef::use_count() const {
  return buffer_ != nullptr ? buffer_->references.load(std::memory_order_acquire) : 0;
}

BufferRef allocate_buffer(std::size_t bytes) { return BufferRef(allocate_from_system(bytes)); }

BufferPool::~BufferPool() { trim(); }

BufferRef BufferPool::allocate(std::size_t bytes) {
  const std::size_t capacity = std::max<std::size_t>(bytes, 1);
  {
    std::lock_guard lock(mutex_);
    for (FreeList& list : free_lists_) {
      if (list.capacity == capacity && !list.buffers.empty()) {
        Buffer* buffer = list.buffers.back();
        list.buffers.pop_back();
        buffer->references.store(1, std::memory_order_relaxed);
        buffer->pool = shared_from_this();
        return BufferRef(buffer);
      }
    }
  }
  Buffer* buffer = allocate_from_system(capacity);
  buffer->pool = shared_from_this();
  return BufferRef(buffer);
}

void BufferPool::release(Buffer* buffer) {
  // Keep this pool alive until the buffer is filed, because the buffer may hold its last reference.
  std::shared_ptr<BufferPool> self = std::move(buffer->pool);
  std::lock_guard lock(mutex_);
  auto list = std::find_if(free_lists_.begin(), free_lists_.end(),
                           [&](const FreeList& candidate) { return candidate.capacity == buffer->capacity; });
  if (list == free_lists_.end()) {
    free_lists_.push_back(FreeList{buffer->capacity, {}});
    list = free_lists_.end() - 1;
  }
  list->buffers.push_back(buffer);
}

std::size_t BufferPool::cached_bytes() const {
  std::lock_guard lock(mutex_);
  std::size_t bytes = 0;
  for (const FreeList& list : free_lists_) {
    bytes += list.capacity * list.buffers.size();
  }
  return bytes;
}

void BufferPool::trim() {
  std::lock_guard lock(mutex_);
  for (FreeList& list : free_lists_) {
    for (Buffer* buffer : list.buffers) {
      free_to_system(buffer);
    }
    list.buffers.clear();
  }
}

MemoryStats memory_stats() {
  return MemoryStats{live_bytes.load(statistics_order), peak_bytes.load(statistics_order),
                     system_allocations.load(statistics_order)};
}

void reset_peak_memory() { peak_bytes.store(live_bytes.load(statistics_order), statistics_order); }

}  // namespace tapegrad
