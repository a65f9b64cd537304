//! MD5 in hex, only to name containers the way build/common.sh does (`md5sum` of
//! `HOSTNAME:KUBE_ROOT:branch`, first 10 hex digits), so trees built by the scripts are
//! recognised. The digest itself is the md-5 crate's (RustCrypto).

use ::md5::{Digest, Md5};

pub fn hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1321_vectors() {
        assert_eq!(hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex(b"message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
    }
}
