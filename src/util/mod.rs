//! Small helpers that every other module may use and that use none of them: durations as
//! people read them, base64, the two-part bounded cache, escaping of unverified text, and the
//! crypto provider.

pub(crate) mod base64;
pub(crate) mod cache;
pub(crate) mod provider;
pub(crate) mod text;
pub(crate) mod time;
