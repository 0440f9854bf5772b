//! The master key file: used when `TENANT_JWT_MASTER_KEY` is not set;
//! created (mode 0600) with a random key on first start, one key per line.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::domain::keys::secrets::{MasterKey, SecretError};

impl MasterKey {
    /// Reads the key file at `path`, or creates it (mode 0600) with a new
    /// random key if it does not exist. Returns the key and whether it was
    /// created. Two processes racing to create it end up with the same key:
    /// the loser of `create_new` reads the winner's file.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), SecretError> {
        let key_file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match Self::read_file(path) {
            Ok(key) => return Ok((key, false)),
            Err(SecretError::KeyFile { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(key_file_error)?;
        }
        let encoded = Self::generate_base64()?;
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(format!("{}\n", encoded.as_str()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(key_file_error)?;
                Ok((Self::from_base64(&encoded)?, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok((Self::read_file(path)?, false))
            }
            Err(e) => Err(key_file_error(e)),
        }
    }

    fn read_file(path: &Path) -> Result<Self, SecretError> {
        let key_file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let metadata = fs::metadata(path).map_err(key_file_error)?;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "master key file is readable by group or others; chmod 600 it"
            );
        }
        let contents = Zeroizing::new(fs::read_to_string(path).map_err(key_file_error)?);
        Self::from_base64(&contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::secrets::UserSecret;
    use crate::types::ids::{Generation, UserId};

    #[test]
    fn key_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/master.key");
        let (first, created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created_again) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(!created_again);
        let user = UserId::generate();
        let sealed = first
            .seal(user, Generation::FIRST, &UserSecret::generate().unwrap())
            .unwrap();
        assert!(second.unseal(user, Generation::FIRST, &sealed).is_ok());
    }

    #[test]
    fn corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "garbage").unwrap();
        assert!(MasterKey::load_or_create_file(&path).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");
    }
}
