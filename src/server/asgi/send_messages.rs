//! Reading the messages the app passes to `send`: the body, the headers and optional keys,
//! as leniently as uvicorn reads them. Shared by the `http` and `websocket` protocols.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString, PyTuple};

pub fn body_bytes(value: Option<Bound<'_, PyAny>>) -> PyResult<Bytes> {
    let Some(value) = value else {
        return Ok(Bytes::new());
    };
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(bytes.as_bytes()));
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(Bytes::from(array.to_vec()));
    }
    value.extract::<Vec<u8>>().map(Bytes::from).map_err(|_| {
        PyValueError::new_err("ASGI message 'body' must be bytes, bytearray or memoryview")
    })
}

fn header_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        // Lenient like uvicorn: latin-1 text is what the bytes would have been.
        return text
            .to_str()?
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| PyValueError::new_err("header value is not latin-1"));
    }
    value.extract::<Vec<u8>>()
}

pub fn parse_headers(headers: Option<Bound<'_, PyAny>>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::new();
    let Some(headers) = headers else {
        return Ok(map);
    };
    for pair in headers.try_iter()? {
        let pair = pair?;
        // The usual shape, a tuple of two bytes, is read in place; anything else is converted.
        if let Ok(tuple) = pair.cast::<PyTuple>()
            && tuple.len() == 2
            && let (Ok(name), Ok(value)) = (
                tuple.get_borrowed_item(0)?.cast::<PyBytes>(),
                tuple.get_borrowed_item(1)?.cast::<PyBytes>(),
            )
        {
            append_header(&mut map, name.as_bytes(), value.as_bytes())?;
            continue;
        }
        let name = header_bytes(&pair.get_item(0)?)?;
        let value = header_bytes(&pair.get_item(1)?)?;
        append_header(&mut map, &name, &value)?;
    }
    Ok(map)
}

fn append_header(map: &mut HeaderMap, name: &[u8], value: &[u8]) -> PyResult<()> {
    let name = HeaderName::from_bytes(name).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid response header name {:?}",
            String::from_utf8_lossy(name)
        ))
    })?;
    let value = HeaderValue::from_bytes(value)
        .map_err(|_| PyValueError::new_err(format!("invalid value for response header {name}")))?;
    map.append(name, value);
    Ok(())
}

pub fn optional_item<'py>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match message.get_item(key) {
        Ok(value) if !value.is_none() => Ok(Some(value)),
        Ok(_) => Ok(None),
        Err(err) if err.is_instance_of::<PyKeyError>(message.py()) => Ok(None),
        Err(err) => Err(err),
    }
}
