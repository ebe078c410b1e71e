//! STUB
#[derive(Debug, thiserror::Error)]
#[error("file not built")]
pub struct FileError;
pub struct FileSource;
impl FileSource {
    pub async fn open(_p: &str, _f: Option<&std::path::Path>) -> Result<FileSource, FileError> {
        Err(FileError)
    }
    pub async fn next_frame(&mut self) -> Result<Option<rill_media::Frame>, FileError> {
        Err(FileError)
    }
}
