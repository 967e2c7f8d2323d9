"""Data in: download or synthesise GZ2, ingest the catalogue, crop and store the images, split, stream."""
