//! Typed RTMP messages: protocol control, user control, commands, data and media.
