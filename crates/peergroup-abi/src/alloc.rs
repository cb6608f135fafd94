//! Memory handed to C callers, freed with one `PeerFreeData` whatever its shape.
//!
//! Each returned block is one root allocation with a small header in front of the pointer the
//! caller sees. The header holds the root's layout and a list of child allocations (strings,
//! item structures) that belong to it, so one `PeerFreeData` frees a whole enumeration page or
//! a structure with its strings. Nothing else keeps a reference to these blocks, so a block the
//! caller forgets to free is a leak LeakSanitizer reports, as it should be.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::{self, NonNull};

use crate::types::WCHAR;

const MAGIC: u64 = 0x5045_4552_4652_4545; // "PEERFREE"
const HEADER: usize = 32;

#[repr(C)]
struct Header {
    magic: u64,
    size: usize,
    align: usize,
    children: *mut Vec<(NonNull<u8>, Layout)>,
}

/// A block being built for a C caller.
pub struct CBlock {
    root: NonNull<u8>,
    root_layout: Layout,
    children: Vec<(NonNull<u8>, Layout)>,
}

impl CBlock {
    /// A zeroed root able to hold a `T` (or an array of `count` `T`s).
    pub fn for_array<T>(count: usize) -> (Self, *mut T) {
        assert!(std::mem::align_of::<T>() <= 16, "over-aligned C type");
        let size = HEADER + std::mem::size_of::<T>() * count.max(1);
        let root_layout = Layout::from_size_align(size, 16).expect("small layout");
        // SAFETY: the layout has a non-zero size.
        let root = NonNull::new(unsafe { alloc_zeroed(root_layout) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(root_layout));
        // SAFETY: HEADER bytes into an allocation of at least HEADER + size_of::<T>() bytes,
        // and HEADER is a multiple of every alignment up to 16.
        let payload = unsafe { root.as_ptr().add(HEADER) } as *mut T;
        (
            CBlock {
                root,
                root_layout,
                children: Vec::new(),
            },
            payload,
        )
    }

    /// A root holding one `T`, written in place.
    pub fn for_value<T>(value: T) -> (Self, *mut T) {
        let (block, p) = Self::for_array::<T>(1);
        // SAFETY: `p` points to zeroed, aligned, owned memory for one T.
        unsafe { p.write(value) };
        (block, p)
    }

    /// A root holding a NUL-terminated UTF-16 copy of `s`.
    pub fn for_wstr(s: &str) -> (Self, *mut WCHAR) {
        let units: Vec<u16> = s.encode_utf16().collect();
        let (block, p) = Self::for_array::<WCHAR>(units.len() + 1);
        // SAFETY: the root has room for units.len() + 1 zeroed WCHARs; the last stays 0.
        unsafe { ptr::copy_nonoverlapping(units.as_ptr(), p, units.len()) };
        (block, p)
    }

    /// A child allocation holding a NUL-terminated UTF-16 copy of `s`.
    pub fn wstr(&mut self, s: &str) -> *mut WCHAR {
        let units: Vec<u16> = s.encode_utf16().collect();
        let p = self.child_array::<WCHAR>(units.len() + 1);
        // SAFETY: the child has room for units.len() + 1 zeroed WCHARs.
        unsafe { ptr::copy_nonoverlapping(units.as_ptr(), p, units.len()) };
        p
    }

    /// A child allocation holding a NUL-terminated copy of ASCII text (`char *` fields such
    /// as `CRYPT_ALGORITHM_IDENTIFIER.pszObjId`).
    pub fn cstr(&mut self, s: &str) -> *mut std::ffi::c_char {
        debug_assert!(!s.as_bytes().contains(&0));
        let p = self.child_array::<u8>(s.len() + 1);
        // SAFETY: the child has room for s.len() + 1 zeroed bytes; the last stays 0.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), p, s.len()) };
        p as *mut std::ffi::c_char
    }

    /// A child allocation holding a copy of `bytes`; NULL for an empty slice.
    pub fn bytes(&mut self, bytes: &[u8]) -> *mut u8 {
        if bytes.is_empty() {
            return ptr::null_mut();
        }
        let p = self.child_array::<u8>(bytes.len());
        // SAFETY: the child has room for bytes.len() bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        p
    }

    /// A child array holding copies of `items`; NULL for an empty slice.
    pub fn array<T: Copy>(&mut self, items: &[T]) -> *mut T {
        if items.is_empty() {
            return ptr::null_mut();
        }
        let p = self.child_array::<T>(items.len());
        // SAFETY: the child has room for items.len() aligned Ts.
        unsafe { ptr::copy_nonoverlapping(items.as_ptr(), p, items.len()) };
        p
    }

    /// A child allocation holding `value`.
    pub fn child<T>(&mut self, value: T) -> *mut T {
        let p = self.child_array::<T>(1);
        // SAFETY: `p` is zeroed, aligned memory for one T owned by this block.
        unsafe { p.write(value) };
        p
    }

    /// A zeroed child allocation of `count` `T`s.
    pub fn child_array<T>(&mut self, count: usize) -> *mut T {
        let layout = Layout::array::<T>(count.max(1)).expect("small layout");
        // SAFETY: the layout has a non-zero size.
        let p = NonNull::new(unsafe { alloc_zeroed(layout) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        self.children.push((p, layout));
        p.as_ptr() as *mut T
    }

    /// Hands the block over: the returned payload pointer is what C frees with `PeerFreeData`.
    pub fn into_raw(mut self) -> *mut u8 {
        let children = Box::into_raw(Box::new(std::mem::take(&mut self.children)));
        let (root, layout) = (self.root, self.root_layout);
        std::mem::forget(self);
        let header = Header {
            magic: MAGIC,
            size: layout.size(),
            align: layout.align(),
            children,
        };
        // SAFETY: the root starts with HEADER >= size_of::<Header>() bytes, aligned to 16.
        unsafe { (root.as_ptr() as *mut Header).write(header) };
        // SAFETY: the payload starts HEADER bytes into the root allocation.
        unsafe { root.as_ptr().add(HEADER) }
    }
}

impl Drop for CBlock {
    fn drop(&mut self) {
        for (p, layout) in self.children.drain(..) {
            // SAFETY: allocated in child_array with this layout and not handed out.
            unsafe { dealloc(p.as_ptr(), layout) };
        }
        // SAFETY: allocated in for_array with root_layout and not handed out.
        unsafe { dealloc(self.root.as_ptr(), self.root_layout) };
    }
}

/// Frees a block made by [`CBlock::into_raw`]. Returns false (and frees nothing) when the
/// pointer does not carry our header.
///
/// # Safety
/// `payload` must be NULL or a pointer returned by [`CBlock::into_raw`] not yet freed.
pub unsafe fn free_block(payload: *mut u8) -> bool {
    if payload.is_null() || (payload as usize) % 16 != 0 {
        return false;
    }
    // SAFETY: per the contract the header sits HEADER bytes before the payload.
    let root = unsafe { payload.sub(HEADER) };
    // SAFETY: as above; the header was written by into_raw.
    let header = unsafe { ptr::read(root as *const Header) };
    if header.magic != MAGIC {
        return false;
    }
    // SAFETY: `children` came from Box::into_raw in into_raw.
    let children = unsafe { Box::from_raw(header.children) };
    for (p, layout) in children.into_iter() {
        // SAFETY: each child was allocated with its recorded layout.
        unsafe { dealloc(p.as_ptr(), layout) };
    }
    let layout = Layout::from_size_align(header.size, header.align).expect("recorded layout");
    // SAFETY: the root was allocated with exactly this layout.
    unsafe { dealloc(root, layout) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_with_children_free_in_one_call() {
        let (mut b, root) = CBlock::for_array::<*mut WCHAR>(2);
        let s1 = b.wstr("hello");
        let s2 = b.wstr("");
        // SAFETY: root has room for two pointers.
        unsafe {
            *root = s1;
            *root.add(1) = s2;
        }
        let raw = b.into_raw();
        assert_eq!(raw as usize, root as usize);
        // SAFETY: s1 holds "hello\0".
        let first: Vec<u16> = unsafe { std::slice::from_raw_parts(s1, 6) }.to_vec();
        assert_eq!(String::from_utf16(&first[..5]).unwrap(), "hello");
        assert_eq!(first[5], 0);
        // SAFETY: raw came from into_raw.
        assert!(unsafe { free_block(raw) });
        assert!(unsafe { !free_block(std::ptr::null_mut()) });
    }
}
