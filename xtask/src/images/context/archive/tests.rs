use super::*;

#[test]
fn a_file_that_changes_length_while_archived_is_an_error() {
    let mut short = ExactLength { inner: &b"abc"[..], remaining: 5 };
    let err = short.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let mut long = ExactLength { inner: &b"abcdef"[..], remaining: 3 };
    let mut read = Vec::new();
    long.read_to_end(&mut read).unwrap();
    assert_eq!((read.as_slice(), long.inner), (&b"abc"[..], &b"def"[..]), "the rest is left to be noticed");
}
