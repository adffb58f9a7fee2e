//! The request paths: full-row logits, context-once ranking (with top-k on the GPU when that
//! shrinks the read-back), and the hash check and GEMM measure the tests and benches use. Each
//! lays out its inputs, sizes the scratch buffers, plans its dispatches, and makes one round trip.

use super::contract::{
    FieldEntry, FoldParams, GROUP, IndicesParams, InteractParams, LayerParams, ONE_PER_ROW, TOPK_SPAN, TopkParams,
};
use super::plan::{Dispatch, Mlp, Rows, dense_transform, embed, linear, linear_groups};
use super::profile::Profiler;
use super::scratch::{Need, widest_layer};
use super::submit::Work;
use super::{GpuBackend, Layout};
use crate::Error;
use crate::batch::Batch;
use crate::config::FieldKind;
use crate::rank::{self, Candidates, Context, Ranked};

/// Where the CSR of each listed field lands in the shared offsets and values buffers, and the
/// slices that fill them, in order: nothing is copied until they are written into the upload
/// buffer. A field with one value per row (categorical, as validated) sends no offsets.
#[derive(Default)]
struct Csr<'a> {
    /// Per field: (config index, where its offsets start or `None` for one value per row, where
    /// its values start), for [`Layout::table`].
    list: Vec<(usize, Option<usize>, usize)>,
    offsets: Vec<&'a [u32]>,
    values: Vec<&'a [u32]>,
    offset_words: usize,
    value_words: usize,
}

impl<'a> Csr<'a> {
    fn push(&mut self, f: usize, one_per_row: bool, offsets: &'a [u32], values: &'a [u32]) {
        let obase = (!one_per_row).then_some(self.offset_words);
        self.list.push((f, obase, self.value_words));
        if !one_per_row {
            self.offsets.push(offsets);
            self.offset_words += offsets.len();
        }
        self.values.push(values);
        self.value_words += values.len();
    }
}

/// The words of a field table.
fn words(table: &[FieldEntry]) -> &[u32] {
    bytemuck::cast_slice(table)
}

enum RankOut {
    Logits(Vec<f32>),
    /// `(logit bits, index)` pairs, the best of each top-k workgroup.
    Winners(Vec<u32>),
}

impl GpuBackend {
    /// The first slot of every block of each (field, value), computed on the GPU by the same
    /// hash the gather uses: `out[i · blocks + c]`.
    pub async fn block_offsets(&mut self, fields: &[u32], values: &[u32]) -> Result<Vec<u32>, Error> {
        let nf = self.config.fields.len();
        if fields.len() != values.len() || fields.iter().any(|&f| f as usize >= nf) {
            return Err(Error::Request(format!("need one value per field index, each below {nf}")));
        }
        let n = fields.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut prof = Profiler::start(&mut self.profiler);
        let l = &self.layout;
        let blocks = l.blocks as usize;
        let table = l.table(&(0..nf).map(|f| (f, Some(0), 0)).collect::<Vec<_>>());
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        let need = Need { fields_a: words(&table).len(), offsets: n, values: n, logits: n * blocks, ..Need::default() };
        s.grow(device, &need);
        let writes =
            [(&s.fields_a.buffer, &[words(&table)][..]), (&s.offsets.buffer, &[fields]), (&s.values.buffer, &[values])];
        let params = IndicesParams {
            n: n as u32,
            blocks: l.blocks,
            kind: l.kind as u32,
            range: l.range,
            key_mode: l.key_mode as u32,
            d: self.config.dim as u32,
        };
        let buffers = vec![&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &s.logits.buffer];
        let dispatches = [Dispatch::new(&self.kernels.indices, params, buffers, linear_groups(n))];
        let work = Work { writes: &writes, dispatches: &dispatches, result: &s.logits.buffer, bytes: n * blocks * 4 };
        let out = self.transfer.run(device, queue, &work, &mut prof).await?;
        prof.report(device, || format!("indices, {n} values"));
        Ok(out)
    }

    /// Logits of a batch validated against this backend's model, not empty: full rows, as
    /// [`crate::Dlrm::forward`].
    pub async fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, Error> {
        let cfg = &self.config;
        let (rows, nd, d) = (batch.rows, cfg.dense.len(), cfg.dim);
        let nvec = cfg.interacting();
        let mut prof = Profiler::start(&mut self.profiler);
        let mut csr = Csr::default();
        for (f, fv) in batch.fields.iter().enumerate() {
            csr.push(f, cfg.fields[f].kind == FieldKind::Categorical, &fv.offsets, &fv.values);
        }
        let table = self.layout.table(&csr.list);
        let chunk = self.chunk_rows.min(rows);
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.grow(
            device,
            &Need {
                fields_a: words(&table).len(),
                offsets: csr.offset_words,
                values: csr.value_words,
                dense: rows * nd,
                act: chunk * widest_layer(cfg),
                vectors: chunk * nvec * d,
                top_in: chunk * cfg.top[0],
                logits: rows,
                ..Need::default()
            },
        );
        let dense = [bytemuck::cast_slice(&batch.dense[..rows * nd])];
        let writes = [
            (&s.fields_a.buffer, &[words(&table)][..]),
            (&s.offsets.buffer, &csr.offsets),
            (&s.values.buffer, &csr.values),
            (&s.dense_raw.buffer, &dense),
        ];

        let k = &self.kernels;
        let model = &self.model;
        let act = [&s.act[0].buffer, &s.act[1].buffer];
        let log1p = cfg.dense_transform == crate::DenseTransform::Log1p;
        let bottom = Mlp::of(&model.bottom, &cfg.bottom, true);
        let mut ds = Vec::new();
        if bottom.is_some() {
            ds.push(dense_transform(&k.dense, log1p, [&s.dense_raw.buffer, &s.dense_x.buffer], rows * nd));
        }
        let top = Mlp::of(&model.top, &cfg.top, false).expect("the top MLP has layers");
        let width = cfg.top[0];
        // Vector 0 of each row is the bottom output, when there is one; the fields' follow.
        let first_field = cfg.field_vector(0);
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start);
            if let Some(bottom) = &bottom {
                bottom.plan(
                    &mut ds,
                    k,
                    &Rows {
                        rows: m,
                        input: (&s.dense_x.buffer, start * nd),
                        act,
                        out: (&s.vectors.buffer, 0, nvec * d),
                    },
                );
            }
            let bufs = [&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &model.embedding, &s.vectors.buffer];
            ds.push(embed(&k.embed, &self.layout, bufs, [m, cfg.fields.len(), d, nvec, first_field, start]));
            let params = InteractParams {
                rows: m as u32,
                nvec: nvec as u32,
                d: d as u32,
                ncopy: first_field as u32,
                npairs: (nvec * (nvec - 1) / 2) as u32,
                width: width as u32,
            };
            let buffers = vec![&model.all_pairs, &s.vectors.buffer, &s.top_in.buffer];
            ds.push(Dispatch::new(&k.interact, params, buffers, (width.div_ceil(GROUP as usize) as u32, m as u32)));
            top.plan(
                &mut ds,
                k,
                &Rows { rows: m, input: (&s.top_in.buffer, 0), act, out: (&s.logits.buffer, start, 1) },
            );
            start += m;
        }
        let work = Work { writes: &writes, dispatches: &ds, result: &s.logits.buffer, bytes: rows * 4 };
        let out = self.transfer.run(device, queue, &work, &mut prof).await?;
        prof.report(device, || format!("full rows, {rows} rows"));
        Ok(out)
    }

    /// Runs only the top MLP's second layer (512 -> 256 on the kaggle preset) on `rows` rows of
    /// the scratch activations, whatever they hold, in row chunks in one submission, and waits
    /// for it: the rank bench's measure of the GEMM kernel through this backend. Returns the
    /// layer's (inputs, outputs).
    #[doc(hidden)]
    pub async fn top_layer_only(&mut self, rows: usize) -> Result<(usize, usize), Error> {
        let top = &self.config.top;
        if top.len() < 3 || rows == 0 {
            return Err(Error::Request("needs rows and a top MLP of two layers or more".into()));
        }
        let (k_in, n) = (top[1], top[2]);
        let chunk = self.chunk_rows.min(rows);
        let mut prof = Profiler::start(&mut self.profiler);
        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.grow(device, &Need { act: chunk * k_in.max(n), ..Need::default() });
        let (w, b) = &self.model.top[1];
        let mut ds = Vec::new();
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start) as u32;
            let (k, n) = (k_in as u32, n as u32);
            let p = LayerParams { m, n, k, lda: k, ldc: n, relu: 1, a_off: 0, c_off: 0 };
            ds.push(linear(&self.kernels, p, [&s.act[0].buffer, w, b, &s.act[1].buffer]));
            start += m as usize;
        }
        let work = Work { writes: &[], dispatches: &ds, result: &s.act[1].buffer, bytes: 4 };
        self.transfer.run::<u32>(device, queue, &work, &mut prof).await?;
        prof.report(device, || format!("one top layer, {rows} rows"));
        Ok((k_in, n))
    }

    /// Logits of every candidate of a request, in candidate order, context-once (as
    /// [`crate::rank::logits`] on the CPU).
    pub async fn rank_logits(&mut self, context: &Context, candidates: &Candidates) -> Result<Vec<f32>, Error> {
        rank::validate(&self.config, context, candidates)?;
        if candidates.rows == 0 {
            return Ok(Vec::new());
        }
        self.run_rank(context, candidates, None).await.map(|r| match r {
            RankOut::Logits(l) => l,
            RankOut::Winners(_) => unreachable!("no top-k asked"),
        })
    }

    /// The `k` best candidates of a request validated against this backend's model, with
    /// `k >= 1` and at least one candidate.
    pub async fn rank(&mut self, context: &Context, candidates: &Candidates, k: usize) -> Result<Vec<Ranked>, Error> {
        let n = candidates.rows;
        let span = TOPK_SPAN as usize;
        let keep = k.min(span);
        let groups = n.div_ceil(span);
        // Top-k on the GPU when the read-back is large and it shrinks it at least fourfold.
        let on_gpu = n >= 4096 && k <= span / 4 && 8 * groups * keep <= n;
        match self.run_rank(context, candidates, on_gpu.then_some(keep)).await? {
            RankOut::Logits(l) => Ok(rank::top_k(&l, k)),
            RankOut::Winners(w) => {
                let pairs: Vec<(f32, u32)> =
                    w.chunks_exact(2).filter(|p| (p[1] as usize) < n).map(|p| (f32::from_bits(p[0]), p[1])).collect();
                Ok(rank::top_k_of(&pairs, k))
            }
        }
    }

    async fn run_rank(
        &mut self,
        context: &Context,
        candidates: &Candidates,
        topk: Option<usize>,
    ) -> Result<RankOut, Error> {
        let cfg = &self.config;
        let (rows, nd, d) = (candidates.rows, cfg.dense.len(), cfg.dim);
        let cand_fields = rank::candidate_fields(context);
        let nq = cand_fields.len();
        // Context vectors: the bottom output (when there is one), then the context fields; their
        // indices among the interacting vectors.
        let ctx_fields: Vec<usize> = (0..cfg.fields.len()).filter(|f| context.fields[*f].is_some()).collect();
        let first_field = cfg.field_vector(0);
        let nctx = ctx_fields.len() + first_field;
        let global = |f: &usize| cfg.field_vector(*f) as u32;
        let mut fold_index: Vec<u32> = (0..first_field as u32).chain(ctx_fields.iter().map(global)).collect();
        fold_index.extend(cand_fields.iter().map(global));
        let width = nq * d + nq * nq.saturating_sub(1) / 2;
        let top1 = cfg.top[1];
        let mut prof = Profiler::start(&mut self.profiler);

        // CSR of the context (one row per field), then of the candidates.
        let categorical = |f: usize| cfg.fields[f].kind == FieldKind::Categorical;
        let ctx_offsets: Vec<[u32; 2]> =
            ctx_fields.iter().map(|&f| [0, context.fields[f].as_ref().map_or(0, |v| v.len() as u32)]).collect();
        let mut csr = Csr::default();
        for (&f, o) in ctx_fields.iter().zip(&ctx_offsets) {
            csr.push(f, categorical(f), o, context.fields[f].as_ref().expect("context field"));
        }
        for (&f, fv) in cand_fields.iter().zip(&candidates.fields) {
            csr.push(f, categorical(f), &fv.offsets, &fv.values);
        }
        let qq_pairs: Vec<u32> = (1..nq as u32).flat_map(|a| (0..a).flat_map(move |b| [a, b])).collect();
        let ctx_table = self.layout.table(&csr.list[..ctx_fields.len()]);
        let cand_table = self.layout.table(&csr.list[ctx_fields.len()..]);
        let chunk = self.chunk_rows.min(rows);
        let span = TOPK_SPAN as usize;
        let groups = rows.div_ceil(span);

        let (device, queue) = (&self.device, &self.queue);
        let s = &mut self.scratch;
        s.grow(
            device,
            &Need {
                fields_a: words(&ctx_table).len(),
                fields_b: words(&cand_table).len(),
                offsets: csr.offset_words,
                values: csr.value_words,
                dense: nd,
                fold_index: fold_index.len(),
                pairs: qq_pairs.len(),
                ctx_vectors: nctx * d,
                folded: top1 * width,
                folded_bias: top1,
                act: chunk * widest_layer(cfg),
                vectors: chunk * nq * d,
                top_in: chunk * width,
                logits: rows,
                topk: topk.map_or(0, |keep| groups * keep * 2),
            },
        );
        let dense = [bytemuck::cast_slice(&context.dense)];
        let writes = [
            (&s.fields_a.buffer, &[words(&ctx_table)][..]),
            (&s.fields_b.buffer, &[words(&cand_table)]),
            (&s.offsets.buffer, &csr.offsets),
            (&s.values.buffer, &csr.values),
            (&s.dense_raw.buffer, &dense),
            (&s.fold_index.buffer, &[&fold_index[..]]),
            (&s.pairs.buffer, &[&qq_pairs[..]]),
        ];

        let k = &self.kernels;
        let model = &self.model;
        let act = [&s.act[0].buffer, &s.act[1].buffer];
        // Once per request: the context's bottom MLP, embeddings, and the fold.
        let log1p = cfg.dense_transform == crate::DenseTransform::Log1p;
        let mut ds = Vec::new();
        if let Some(bottom) = Mlp::of(&model.bottom, &cfg.bottom, true) {
            ds.push(dense_transform(&k.dense, log1p, [&s.dense_raw.buffer, &s.dense_x.buffer], nd));
            bottom.plan(
                &mut ds,
                k,
                &Rows { rows: 1, input: (&s.dense_x.buffer, 0), act, out: (&s.ctx_vectors.buffer, 0, nctx * d) },
            );
        }
        if !ctx_fields.is_empty() {
            let bufs =
                [&s.fields_a.buffer, &s.offsets.buffer, &s.values.buffer, &model.embedding, &s.ctx_vectors.buffer];
            ds.push(embed(&k.embed, &self.layout, bufs, [1, ctx_fields.len(), d, nctx, first_field, 0]));
        }
        let fold = FoldParams {
            top1: top1 as u32,
            d: d as u32,
            lead: cfg.bottom_width() as u32,
            nctx: nctx as u32,
            nq: nq as u32,
            width: width as u32,
            top0: cfg.top[0] as u32,
        };
        let buffers = vec![
            &s.fold_index.buffer,
            &s.ctx_vectors.buffer,
            &model.top[0].0,
            &model.top[0].1,
            &s.folded.buffer,
            &s.folded_bias.buffer,
        ];
        ds.push(Dispatch::new(&k.fold, fold, buffers, ((width + 1).div_ceil(GROUP as usize) as u32, top1 as u32)));
        // Per candidate chunk: the folded first layer, then the rest of the top MLP.
        let top = Mlp {
            first: (&s.folded.buffer, &s.folded_bias.buffer),
            rest: &model.top[1..],
            widths: (width, &cfg.top[1..]),
            relu_last: false,
        };
        let mut start = 0;
        while start < rows {
            let m = chunk.min(rows - start);
            if nq > 0 {
                let bufs =
                    [&s.fields_b.buffer, &s.offsets.buffer, &s.values.buffer, &model.embedding, &s.vectors.buffer];
                ds.push(embed(&k.embed, &self.layout, bufs, [m, nq, d, nq, 0, start]));
                let params = InteractParams {
                    rows: m as u32,
                    nvec: nq as u32,
                    d: d as u32,
                    ncopy: nq as u32,
                    npairs: (qq_pairs.len() / 2) as u32,
                    width: width as u32,
                };
                let buffers = vec![&s.pairs.buffer, &s.vectors.buffer, &s.top_in.buffer];
                ds.push(Dispatch::new(
                    &k.interact,
                    params,
                    buffers,
                    (width.div_ceil(GROUP as usize).max(1) as u32, m as u32),
                ));
            }
            top.plan(
                &mut ds,
                k,
                &Rows { rows: m, input: (&s.top_in.buffer, 0), act, out: (&s.logits.buffer, start, 1) },
            );
            start += m;
        }
        let (result, bytes) = match topk {
            Some(keep) => {
                let params = TopkParams { n: rows as u32, keep: keep as u32 };
                ds.push(Dispatch::new(&k.topk, params, vec![&s.logits.buffer, &s.topk.buffer], (groups as u32, 1)));
                (&s.topk.buffer, groups * keep * 8)
            }
            None => (&s.logits.buffer, rows * 4),
        };
        let work = Work { writes: &writes, dispatches: &ds, result, bytes };
        let out = match topk {
            Some(_) => RankOut::Winners(self.transfer.run(device, queue, &work, &mut prof).await?),
            None => RankOut::Logits(self.transfer.run(device, queue, &work, &mut prof).await?),
        };
        prof.report(device, || format!("context-once, {rows} candidates"));
        Ok(out)
    }
}

impl Layout {
    /// A field table: per listed `(config index, offsets base or None for one value per row,
    /// values base)`, its entry.
    fn table(&self, list: &[(usize, Option<usize>, usize)]) -> Vec<FieldEntry> {
        list.iter()
            .map(|&(f, obase, vbase)| FieldEntry {
                offsets_base: obase.map_or(ONE_PER_ROW, |o| o as u32),
                values_base: vbase as u32,
                ..self.fields[f]
            })
            .collect()
    }
}
