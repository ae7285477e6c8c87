//! Small helpers over lopdf objects that never fail: references resolve or give up quietly.

use lopdf::{Dictionary, Document, Object};

/// Reference hops followed before giving up (a reference cycle must not loop).
const MAX_HOPS: usize = 16;

pub(crate) fn deref<'a>(doc: &'a Document, mut object: &'a Object) -> &'a Object {
    for _ in 0..MAX_HOPS {
        match object {
            Object::Reference(id) => match doc.get_object(*id) {
                Ok(next) => object = next,
                Err(_) => return &Object::Null,
            },
            _ => return object,
        }
    }
    &Object::Null
}

pub(crate) fn dict_get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    let object = deref(doc, dict.get(key).ok()?);
    match object {
        Object::Null => None,
        // A stream's dictionary stands for the stream where a dictionary is expected.
        other => Some(other),
    }
}

pub(crate) fn name_of(object: &Object) -> Option<&[u8]> {
    match object {
        Object::Name(name) => Some(name.as_slice()),
        _ => None,
    }
}

pub(crate) fn num(object: &Object) -> Option<f64> {
    let value = match object {
        Object::Integer(i) => *i as f64,
        Object::Real(r) => f64::from(*r),
        _ => return None,
    };
    value.is_finite().then_some(value)
}

/// A dictionary, or the dictionary of a stream.
pub(crate) fn as_dict(object: &Object) -> Option<&Dictionary> {
    match object {
        Object::Dictionary(dict) => Some(dict),
        Object::Stream(stream) => Some(&stream.dict),
        _ => None,
    }
}
