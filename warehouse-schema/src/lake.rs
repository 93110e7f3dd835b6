//! The Parquet lake: `lake/<table>/event_date=YYYY-MM-DD/part-*.parquet` plus a manifest.
//!
//! A manifest (`lake/_manifest.json` for ingested facts, `lake/_derived_manifest.json` for the
//! pipeline's tables) is the commit point of its section. It lists every data file that
//! belongs to the lake and the position of the source (outbox id or Kafka offsets) those files
//! cover. It is replaced atomically (write, fsync, rename), so after a crash the lake is exactly
//! the last manifest: files not listed are leftovers of an unfinished batch, and readers and the
//! next writer ignore or delete them.

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::tables::{Section, Table};

/// Columns of ids that (nearly) never repeat within a file: written without a dictionary.
const UNIQUE_ID_COLUMNS: [&str; 4] = ["event_id", "session_id", "reservation_id", "payment_id"];

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake i/o at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("manifest {path} is unreadable: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the committed files of the lake stand, and how far the source has been consumed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Bumped by every commit; also the sequence number of the next file names.
    pub version: u64,
    /// Source positions covered by the committed files, e.g. `"outbox"` → last outbox id, or
    /// `"kafka:<topic>:<partition>"` → next offset.
    pub positions: BTreeMap<String, i64>,
    /// Files per table, relative to the lake root.
    pub files: BTreeMap<String, Vec<String>>,
    /// Rows per table, for cheap counts and checks.
    pub rows: BTreeMap<String, u64>,
    /// Lots registered so far: validation state that must commit together with the data, so
    /// a resumed ingest judges `unknown_lot` exactly as the crashed one would have.
    #[serde(default)]
    pub lots: std::collections::BTreeSet<i64>,
}

impl Manifest {
    pub fn files_of(&self, table: Table) -> &[String] {
        self.files
            .get(table.name())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn rows_of(&self, table: Table) -> u64 {
        self.rows.get(table.name()).copied().unwrap_or(0)
    }
}

/// A lake rooted at a directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root.join(table.name())
    }

    /// Relative path of a new data file of `table` (in its date partition when it has one).
    /// Names are unique per write, so a retried batch never overwrites a file a reader may hold
    /// and the leftovers of a crashed batch stay recognisable as uncommitted.
    pub fn data_file(table: Table, date: Option<NaiveDate>, seq: u64, part: usize) -> String {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let name = format!(
            "part-{seq:010}-{part:04}-{}.parquet",
            &unique[unique.len() - 12..]
        );
        match (date, table.partition_key()) {
            (Some(d), Some(key)) => {
                format!("{}/{key}={}/{name}", table.name(), d.format("%Y-%m-%d"))
            }
            _ => format!("{}/{name}", table.name()),
        }
    }

    /// The date partition of a file named by [`Lake::data_file`], if it is in one.
    pub fn file_date(relative: &str) -> Option<NaiveDate> {
        let dir = relative.rsplit('/').nth(1)?;
        let (_, date) = dir.split_once('=')?;
        NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
    }

    /// The sequence number (the manifest version that committed it) of a file named by
    /// [`Lake::data_file`].
    pub fn file_seq(relative: &str) -> Option<u64> {
        let name = relative.rsplit('/').next()?;
        name.strip_prefix("part-")?.split('-').next()?.parse().ok()
    }

    /// Rows of a Parquet file, from its footer.
    pub fn parquet_rows(&self, relative: &str) -> Result<u64> {
        let path = self.absolute(relative);
        let file = File::open(&path).map_err(io(&path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        Ok(builder.metadata().file_metadata().num_rows() as u64)
    }

    pub fn absolute(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The committed manifest of a section, or an empty one for a new lake.
    pub fn manifest(&self, section: Section) -> Result<Manifest> {
        let path = self.root.join(section.manifest_file());
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| LakeError::Manifest { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Atomically replace the manifest: this is the commit of everything it lists.
    pub fn commit(&self, section: Section, manifest: &Manifest) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let tmp = self.root.join(format!("{}.tmp", section.manifest_file()));
        let path = self.root.join(section.manifest_file());
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&serde_json::to_vec_pretty(manifest).expect("manifest serializes"))
            .map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.root)
    }

    /// Delete data files that no committed manifest lists: the remains of a batch that crashed
    /// before its commit. Returns how many were removed.
    pub fn remove_uncommitted(&self, section: Section, manifest: &Manifest) -> Result<usize> {
        let listed: std::collections::HashSet<PathBuf> = manifest
            .files
            .values()
            .flatten()
            .map(|f| self.absolute(f))
            .collect();
        let mut removed = 0;
        for table in section.tables() {
            let dir = self.table_dir(table);
            for file in parquet_files_under(&dir)? {
                if !listed.contains(&file) {
                    fs::remove_file(&file).map_err(io(&file))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Write batches as one Parquet file (zstd) and fsync it. The file belongs to the lake only
    /// once a manifest lists it.
    pub fn write_parquet(&self, relative: &str, batches: &[RecordBatch]) -> Result<u64> {
        let path = self.absolute(relative);
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| {
            io(&path)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no batches to write",
            ))
        })?;
        let mut file = self.create_parquet(relative, schema)?;
        for b in batches {
            file.write(b)?;
        }
        file.finish()
    }

    /// A Parquet file (zstd) to write batch by batch as they come (the Kafka consumer encodes
    /// a batch's first events while it decodes the rest); [`ParquetFile::finish`] fsyncs it.
    /// Like [`write_parquet`](Self::write_parquet)'s, it belongs to the lake only once a
    /// manifest lists it.
    pub fn create_parquet(
        &self,
        relative: &str,
        schema: arrow::datatypes::SchemaRef,
    ) -> Result<ParquetFile> {
        let path = self.absolute(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let file = File::create(&path).map_err(io(&path))?;
        let mut props =
            WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?));
        // An id column is (nearly) unique: a dictionary only costs time before the writer
        // falls back to plain values.
        for column in UNIQUE_ID_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let writer = ArrowWriter::try_new(file, schema, Some(props.build()))?;
        Ok(ParquetFile {
            path,
            writer,
            rows: 0,
        })
    }

    /// Read every committed file of a table (small tables and tests; the pipeline streams).
    pub fn read_table(&self, table: Table) -> Result<Vec<RecordBatch>> {
        let manifest = self.manifest(table.section())?;
        let mut out = Vec::new();
        for f in manifest.files_of(table) {
            out.extend(read_parquet(&self.absolute(f))?);
        }
        Ok(out)
    }
}

pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    Ok(reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(parquet::errors::ParquetError::from)?)
}

fn parquet_files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            out.extend(parquet_files_under(&path)?);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A rename is durable only once the directory entry is; on Linux that means fsync of the dir.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A Parquet file being written ([`Lake::create_parquet`]).
pub struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ParquetFile {
    /// Encode one more batch (of the file's schema) into the file.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Write the footer and fsync; the number of rows written.
    pub fn finish(self) -> Result<u64> {
        let file = self.writer.into_inner()?;
        file.sync_all().map_err(io(&self.path))?;
        Ok(self.rows)
    }
}
