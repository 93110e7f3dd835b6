//! DataFusion jobs over the Parquet lake: occupancy and reports
